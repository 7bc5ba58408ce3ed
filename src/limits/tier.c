/*
 * tier.c - tiers, units and the throttling checks; see tier.h.
 *
 * Pure reads of the configuration, the router's client count and the
 * metrics module's counters (server connections, today's messages): no
 * state of its own, so a reload that changes tier or units applies to the
 * next check.
 */
#include "limits/tier.h"

#include <stdio.h>

#include "metrics/metrics.h"
#include "server.h"
#include "util/error.h"

#define DEFAULT_PAID_UNITS 100

static const char *const tier_names[] = {"Free", "Standard", "Premium"};

const char *sb_tier_name(sb_tier t) {
    return (unsigned)t < 3 ? tier_names[t] : "?";
}

long sb_tier_units(const sb_config *c) {
    if (c->units > 0)
        return c->units;
    return c->tier == SB_TIER_FREE ? 1 : DEFAULT_PAID_UNITS;
}

/* Azure's unit steps: 1..10, then tens to 100; Premium (P2) also hundreds to 1000. */
static int units_valid(sb_tier t, long u) {
    if (t == SB_TIER_FREE)
        return u == 1;
    if (u >= 1 && u <= 10)
        return 1;
    if (u > 10 && u <= 100)
        return u % 10 == 0;
    return t == SB_TIER_PREMIUM && u > 100 && u <= 1000 && u % 100 == 0;
}

int sb_tier_check_config(const sb_config *c, char *err, size_t errlen) {
    if ((unsigned)c->tier > SB_TIER_PREMIUM) {
        snprintf(err, errlen, "tier: unknown tier");
        return SB_EINVAL;
    }
    long u = sb_tier_units(c);
    if (units_valid((sb_tier)c->tier, u))
        return SB_OK;
    if (c->tier == SB_TIER_FREE)
        snprintf(err, errlen,
                 "units: %ld is not valid for tier Free, which has exactly 1 unit (set units = 1 or 0)", u);
    else
        snprintf(err, errlen, "units: %ld is not valid for tier %s; valid: 1-10, 20, 30, ..., 100%s", u,
                 tier_names[c->tier], c->tier == SB_TIER_PREMIUM ? ", 200, 300, ..., 1000" : "");
    return SB_EINVAL;
}

uint64_t sb_tier_connection_limit(const sb_config *c) {
    if (c->tier == SB_TIER_FREE)
        return SB_TIER_FREE_CONNECTIONS;
    return (uint64_t)sb_tier_units(c) * SB_TIER_CONNECTIONS_PER_UNIT;
}

uint64_t sb_tier_daily_message_limit(const sb_config *c) {
    return c->tier == SB_TIER_FREE && c->free_tier_daily_messages > 0 ? (uint64_t)c->free_tier_daily_messages
                                                                      : 0;
}

uint64_t sb_tier_connections(const sb_server *srv) {
    return (uint64_t)srv->router.nclients + sb_metrics_live(srv, SB_EP_SERVER);
}

int sb_tier_connection_allowed(const sb_server *srv) {
    return sb_tier_connections(srv) < sb_tier_connection_limit(&srv->cfg);
}

int sb_tier_message_allowed(const sb_server *srv, uint64_t nmessages) {
    uint64_t limit = sb_tier_daily_message_limit(&srv->cfg);
    if (!limit)
        return 1;
    uint64_t used = sb_metrics_day_messages(srv);
    return used < limit && nmessages <= limit - used;
}

double sb_tier_quota_utilization(const sb_server *srv) {
    return (double)sb_tier_connections(srv) * 100.0 / (double)sb_tier_connection_limit(&srv->cfg);
}
