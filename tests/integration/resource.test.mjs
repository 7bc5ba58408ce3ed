// resource.test.mjs - the ARM resource the management API returns reflects the configured tier and units.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from './lib/server.mjs';

const RESOURCE_ID =
    '/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/default/providers/Microsoft.SignalRService/SignalR/switchboard';

async function getResource(server) {
    const res = await fetch(`${server.endpoint}${RESOURCE_ID}?api-version=2024-03-01`, {
        headers: { Authorization: `Bearer ${server.restToken(`${server.endpoint}${RESOURCE_ID}`)}` },
    });
    assert.equal(res.status, 200, await res.clone().text());
    return res.json();
}

for (const [env, sku] of [
    [{}, { name: 'Standard_S1', tier: 'Standard', size: 'S1', capacity: 100 }],
    [{ SWITCHBOARD_TIER: 'Free' }, { name: 'Free_F1', tier: 'Free', size: 'F1', capacity: 1 }],
    [{ SWITCHBOARD_TIER: 'Premium', SWITCHBOARD_UNITS: '20' }, { name: 'Premium_P1', tier: 'Premium', size: 'P1', capacity: 20 }],
]) {
    test(`sku for ${JSON.stringify(env)} is ${sku.name} x${sku.capacity}`, async () => {
        const server = await startServer({ mode: 'serverless', env });
        try {
            const r = await getResource(server);
            assert.deepEqual(r.sku, sku);
            assert.equal(r.type, 'Microsoft.SignalRService/SignalR');
            assert.equal(r.id, RESOURCE_ID);
            server.assertHealthy();
        } finally {
            await server.stop();
        }
    });
}
