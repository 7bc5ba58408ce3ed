/*
 * tier.h - Azure SignalR Service's pricing tiers as configuration: the
 * connection quota and the Free tier's daily message quota, and the
 * throttling decisions made from them.
 *
 * Configuration (config.h): tier = Free | Standard | Premium (default
 * Standard), units (0 = the tier's default: 1 on Free, 100 otherwise).  Valid
 * unit counts are Azure's: Free exactly 1; Standard 1-10, 20, 30, ..., 100;
 * Premium the same plus 200, 300, ..., 1000 (Premium_P2).
 *
 * Limits:
 *  - connections: Free 20, Standard and Premium 1,000 per unit, counting
 *    client connections (negotiated or connected) plus app-server
 *    connections, as Azure counts them;
 *  - messages: Free only, free_tier_daily_messages (default 20,000) per UTC
 *    day, in MessageCount's unit (each outbound client message counts
 *    ceil(bytes / 2048); pings do not count).  Standard and Premium have no
 *    cap (Azure bills the messages beyond the included ones).
 *
 * What a caller does when a check fails (docs/METRICS.md "Tiers"): the
 * client endpoint and the app-server endpoint answer 429 with "Connection
 * count reaches limit" and log a Throttling record; REST sends answer 429
 * with "Message count reaches limit"; app-server fan-out messages are dropped
 * with a Throttling record.  Checks are cheap reads (event loop thread).
 */
#ifndef SB_TIER_H
#define SB_TIER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct sb_server;

/* Same order as the config table's enum values. */
typedef enum sb_tier { SB_TIER_FREE = 0, SB_TIER_STANDARD = 1, SB_TIER_PREMIUM = 2 } sb_tier;

#define SB_TIER_FREE_CONNECTIONS 20
#define SB_TIER_CONNECTIONS_PER_UNIT 1000

const char *sb_tier_name(sb_tier t); /* "Free", "Standard", "Premium" */

/* Validate tier and units together.  SB_OK, or SB_EINVAL with a message naming the valid values in err. */
int sb_tier_check_config(const sb_config *c, char *err, size_t errlen);
/* Units in effect (the default when units is 0). */
long sb_tier_units(const sb_config *c);
/* Concurrent connections allowed. */
uint64_t sb_tier_connection_limit(const sb_config *c);
/* Messages (2 KB units) allowed per UTC day; 0 = no cap. */
uint64_t sb_tier_daily_message_limit(const sb_config *c);

/* Connections counted against the quota now: client connections (negotiated or connected) + app servers'. */
uint64_t sb_tier_connections(const struct sb_server *srv);
/* May one more connection (client or server) be accepted?  1 yes, 0 refuse with 429. */
int sb_tier_connection_allowed(const struct sb_server *srv);
/* May a send go out?  nmessages: what it is known to cost at least (1 when its fan-out is not known yet).
 * 1 yes; 0 when the Free tier's daily quota is used up.  The send that crosses the quota goes out whole. */
int sb_tier_message_allowed(const struct sb_server *srv, uint64_t nmessages);
/* Connections relative to the quota, in percent (ConnectionQuotaUtilization). */
double sb_tier_quota_utilization(const struct sb_server *srv);

#endif
