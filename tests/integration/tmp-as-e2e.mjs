// throwaway e2e driver for the reference app server (copied into tests/integration while it runs)
import signalR from '@microsoft/signalr';
import msgpack from '@microsoft/signalr-protocol-msgpack';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SVC = process.env.SVC_BIN, APP = process.env.APP_BIN;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let failures = 0, passes = 0;
function check(name, cond, detail) {
  if (cond) { passes++; } else { failures++; console.log(`FAIL ${name}`, detail ?? ''); }
}
function waitLine(proc, re) {
  return new Promise((resolve, reject) => {
    let buf = '';
    const t = setTimeout(() => reject(new Error('timeout waiting for ' + re + ' got ' + buf)), 10000);
    proc.stdout.on('data', (d) => { buf += d; const m = re.exec(buf); if (m) { clearTimeout(t); resolve(m); } });
  });
}
const dir = mkdtempSync(join(tmpdir(), 'ase2e-'));
const svc = spawn(SVC, ['serve', '--listen', '127.0.0.1:0', '--data-dir', dir, '--access-key', 'K'], { stdio: ['ignore', 'pipe', 'inherit'] });
const cs = (await waitLine(svc, /connection string: (\S+)/))[1];
const logFile = join(dir, 'app.log');
const app = spawn(APP, ['--connection-string', cs, '--log', logFile, '--connections', process.env.NCONN ?? '3'], { stdio: ['ignore', 'pipe', 'inherit'] });
const appUrl = (await waitLine(app, /appserver: listening on (http:\S+)\n/))[1];
console.log('app at', appUrl, 'service', cs);

async function client(user, transport, protocol, extra = '') {
  const got = [];
  let b = new signalR.HubConnectionBuilder()
    .withUrl(`${appUrl}/chat?user=${user}${extra}`, { transport: signalR.HttpTransportType[transport] })
    .configureLogging(signalR.LogLevel.Warning);
  if (protocol === 'messagepack') b = b.withHubProtocol(new msgpack.MessagePackHubProtocol());
  const c = b.build();
  for (const t of ['echo', 'broadcast', 'user', 'group', 'direct']) c.on(t, (...a) => { got.push({ t, a }); });
  c.closedWith = new Promise((r) => c.onclose((e) => r(e)));
  await c.start();
  c.got = got;
  return c;
}
const waitFor = async (pred, ms = 3000) => { const end = Date.now() + ms; while (Date.now() < end) { if (pred()) return true; await sleep(20); } return false; };

for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
  for (const protocol of ['json', 'messagepack']) {
    if (transport === 'ServerSentEvents' && protocol === 'messagepack') continue;
    const tag = `${transport}/${protocol}`;
    try {
      const a = await client('alice', transport, protocol);
      const b = await client('bob', transport, protocol);
      const r = await a.invoke('Echo', 'hi', 42, { k: [1, 2] });
      check(`${tag} echo result`, r === 'hi', r);
      check(`${tag} echo target`, await waitFor(() => a.got.some((m) => m.t === 'echo' && m.a[0] === 'hi' && m.a[1] === 42)), a.got);
      const r2 = await a.invoke('echo');
      check(`${tag} echo no args null`, r2 === null, r2);
      const id = await b.invoke('GetConnectionId');
      check(`${tag} getconnectionid`, typeof id === 'string' && id === b.connectionId, [id, b.connectionId]);
      await a.invoke('Broadcast', 'all', 1);
      check(`${tag} broadcast`, await waitFor(() => b.got.some((m) => m.t === 'broadcast' && m.a[0] === 'all') && a.got.some((m) => m.t === 'broadcast')));
      await a.invoke('SendToUser', 'bob', 'u1');
      check(`${tag} user`, await waitFor(() => b.got.some((m) => m.t === 'user' && m.a[0] === 'u1')));
      await a.invoke('SendToConnection', id, 'd1');
      check(`${tag} direct`, await waitFor(() => b.got.some((m) => m.t === 'direct' && m.a[0] === 'd1')));
      const jg = await b.invoke('JoinGroup', 'g1');
      check(`${tag} joingroup result`, jg === null, jg);
      await a.invoke('SendToGroup', 'g1', 'gm1');
      check(`${tag} group`, await waitFor(() => b.got.some((m) => m.t === 'group' && m.a[0] === 'gm1')));
      await b.invoke('LeaveGroup', 'g1');
      await a.invoke('SendToGroup', 'g1', 'gm2');
      await sleep(300);
      check(`${tag} leave`, !b.got.some((m) => m.t === 'group' && m.a[0] === 'gm2'));
      await a.invoke('JoinAndSendNoAwait', 'g2', 'race');
      await sleep(300);
      check(`${tag} noawait caller misses`, !a.got.some((m) => m.t === 'group' && m.a[0] === 'race'), a.got);
      await a.invoke('SendToGroup', 'g2', 'after');
      check(`${tag} noawait joined later`, await waitFor(() => a.got.some((m) => m.t === 'group' && m.a[0] === 'after')));
      await a.invoke('JoinAndSendAwait', 'g3', 'sure');
      check(`${tag} await caller gets`, await waitFor(() => a.got.some((m) => m.t === 'group' && m.a[0] === 'sure')), a.got);
      await a.invoke('AddUserToGroup', 'bob', 'ug');
      await a.invoke('SendToGroup', 'ug', 'ugm');
      check(`${tag} addusertogroup`, await waitFor(() => b.got.some((m) => m.t === 'group' && m.a[0] === 'ugm')));
      let err;
      try { await a.invoke('NoSuch', 1); } catch (e) { err = e; }
      check(`${tag} unknown`, err && /Unknown hub method 'NoSuch'/.test(err.message), err?.message);
      err = undefined;
      try { await a.invoke('SendToUser'); } catch (e) { err = e; }
      check(`${tag} bad args`, err && /argument/.test(err.message), err?.message);
      const closeP = b.invoke('Close', 'bye now');
      const cr = await closeP.catch((e) => 'rejected:' + e.message);
      const ce = await Promise.race([b.closedWith, sleep(3000).then(() => 'timeout')]);
      check(`${tag} close result`, cr === null, cr);
      check(`${tag} close event`, ce !== 'timeout' && (!ce || /bye now/.test(ce.message)), ce?.message ?? ce);
      console.log(`${tag}: close error seen by client:`, ce?.message);
      await a.stop();
    } catch (e) {
      failures++;
      console.log(`FAIL ${tag} threw`, e);
    }
  }
}
// diagnostic client: tracing ids and logs
{
  const d = await client('dia', 'WebSockets', 'json', '&diag=yes');
  await d.invoke('Broadcast', 'x');
  await d.invoke('JoinGroup', 'dg');
  await d.invoke('SendToGroup', 'dg', 'y');
  await d.invoke('SendToUser', 'dia', 'z');
  await d.invoke('Echo', 'e');
  await sleep(300);
  const log = readFileSync(logFile, 'utf8');
  console.log(log.split('\n').filter((l) => /message \d/.test(l)).slice(-14).join('\n'));
  check('diag broadcast log', /Z Start to broadcast message \d+\.\n/.test(log));
  check('diag group log', /Start to broadcast message \d+ to group dg\./.test(log));
  check('diag user log', /Start to send message \d+ to user dia\./.test(log));
  check('diag join log', /Start to send message \d+ to add connection \S+ to group dg\./.test(log));
  check('diag conns log', /Start to send message \d+ to 1 connections \S+\./.test(log));
  check('diag succeeded', /Succeeded to send message \d+\./.test(log));
  check('diag received', /Received message \d+ from client connection/.test(log), 'service does not stamp tracing ids on diagnostic client data');
  await d.stop();
}
console.log(`${passes} passed, ${failures} failed`);
const t0 = Date.now();
app.kill('SIGTERM');
const code = await new Promise((r) => app.on('exit', (c, s) => r([c, s])));
console.log('app exit', code, 'after', Date.now() - t0, 'ms');
svc.kill('SIGTERM');
await new Promise((r) => svc.on('exit', r));
process.exit(failures ? 1 : 0);
