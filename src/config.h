/*
 * config.h - the ONE table of settings.
 *
 * Every setting exists exactly once, in SB_CONFIG_TABLE below: its name (also
 * the config-file key and, upper-cased with a SWITCHBOARD_ prefix, the
 * environment variable), type, default, bounds and help text.  The table
 * drives the config-file parser, environment overrides, `switchboard serve
 * --help`, `switchboard config dump` and docs/CONFIG.md.  No setting exists only
 * in code.
 *
 * Precedence, lowest first: embedded default, config file, environment,
 * command-line flag.
 *
 * Ownership: sb_config owns its strings; sb_config_free() releases them.
 */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H

#include <stdio.h>

enum sb_config_type { SB_CFG_STRING, SB_CFG_INT, SB_CFG_ENUM };

enum sb_service_mode { SB_MODE_DEFAULT = 0, SB_MODE_SERVERLESS = 1 };

/* X(name, type, default, min, max, enum values ("a|b"), help) */
#define SB_CONFIG_TABLE(X)                                                                                      \
    X(listen, STRING, "127.0.0.1:8080", 0, 0, NULL, "Address to listen on, HOST:PORT (port 0 picks a free one)") \
    X(data_dir, STRING, "./switchboard-data", 0, 0, NULL, "Directory for the access key, logs and workspaces")    \
    X(access_key, STRING, "", 0, 0, NULL,                                                                        \
      "Access key for signing tokens (empty: generated once and kept in the data dir)")                         \
    X(mode, ENUM, "default", 0, 0, "default|serverless",                                                         \
      "Service mode: default (app servers connect) or serverless (REST API and upstream)")                      \
    X(public_endpoint, STRING, "", 0, 0, NULL,                                                                   \
      "Endpoint URL clients use, for token audiences (empty: http://<listen address>)")                         \
    X(subscription_id, STRING, "00000000-0000-0000-0000-000000000000", 0, 0, NULL,                               \
      "Subscription id in the resource id")                                                                     \
    X(resource_group, STRING, "default", 0, 0, NULL, "Resource group in the resource id")                       \
    X(resource_name, STRING, "switchboard", 0, 0, NULL, "Resource name in the resource id")                     \
    X(location, STRING, "local", 0, 0, NULL, "Location reported in resource logs")                              \
    X(keep_alive_interval_ms, INT, "15000", 100, 3600000, NULL,                                                  \
      "Send a ping to an idle client after this many milliseconds")                                             \
    X(client_timeout_ms, INT, "30000", 200, 3600000, NULL,                                                       \
      "Close a client that sent nothing for this many milliseconds")                                            \
    X(handshake_timeout_ms, INT, "15000", 100, 600000, NULL, "Close a client that does not complete the hub handshake in time") \
    X(negotiate_timeout_ms, INT, "15000", 100, 600000, NULL,                                                     \
      "Forget a negotiated connection that does not connect in time")                                           \
    X(long_poll_timeout_ms, INT, "90000", 100, 600000, NULL, "Answer an idle long poll with an empty 200 after this long") \
    X(disconnect_timeout_ms, INT, "15000", 100, 600000, NULL,                                                    \
      "Close an SSE/long-polling connection whose transport went away for this long")                           \
    X(max_header_bytes, INT, "16384", 1024, 1048576, NULL, "Largest request line + headers (431 above)")       \
    X(max_url_bytes, INT, "12288", 256, 1048576, NULL, "Longest request URL (414 above)")                       \
    X(max_rest_body_bytes, INT, "1048576", 1024, 67108864, NULL, "Largest REST API request body (413 above)")  \
    X(max_message_bytes, INT, "1048576", 256, 67108864, NULL,                                                   \
      "Largest client hub message or HTTP send body (close 1009 / 413 above)")                                 \
    X(max_token_bytes, INT, "4096", 256, 65536, NULL, "Longest access token (413 above)")                       \
    X(max_output_queue_bytes, INT, "1048576", 4096, 268435456, NULL,                                            \
      "Bytes queued to one connection before it is closed as a slow consumer")                                 \
    X(write_threads, INT, "-1", -1, 64, NULL,                                                                     \
      "Threads that share the socket writes of a busy loop turn with the event loop (-1: one per extra CPU core, at most 7)") \
    X(token_skew_seconds, INT, "60", 0, 3600, NULL, "Clock skew allowed when checking token exp and nbf")       \
    X(server_keep_alive_interval_ms, INT, "5000", 100, 600000, NULL,                                            \
      "Send a ping to an idle app-server connection after this many milliseconds")                             \
    X(server_timeout_ms, INT, "30000", 200, 3600000, NULL,                                                      \
      "Close an app-server connection that sent nothing for this many milliseconds")                           \
    X(max_server_message_bytes, INT, "16777216", 1024, 268435456, NULL,                                         \
      "Largest service-protocol message from an app server (close 1009 above)")                                \
    X(storage_accounts, STRING, "local", 0, 0, NULL,                                                            \
      "Storage accounts diagnostic settings may name (comma-separated; each kept in <data_dir>/storage/<name>)") \
    X(workspaces, STRING, "local", 0, 0, NULL,                                                                  \
      "Log Analytics workspaces diagnostic settings may name (comma-separated; <data_dir>/workspaces/<name>.db)") \
    X(log_queue_max_records, INT, "262144", 1024, 16777216, NULL,                                              \
      "Log records waiting for the writer thread before new ones are dropped (and counted)")                   \
    X(max_diagnostic_clients, INT, "100", 0, 100000, NULL,                                                     \
      "Concurrent diagnostic clients; the next one gets 429 Too Many Requests")                               \
    X(workspace_retention_days, INT, "30", 0, 3650, NULL,                                                       \
      "Days workspace tables SignalRServiceDiagnosticLogs and AzureMetrics keep rows (0: forever)")            \
    X(activity_retention_days, INT, "90", 0, 3650, NULL,                                                        \
      "Days the activity log is kept: table AzureActivity and the built-in activity store (0: forever)")       \
    X(max_connections, INT, "0", 0, 10000000, NULL,                                                             \
      "Hard cap on client connections (0: no cap beyond the tier quota)")                                      \
    X(tier, ENUM, "Standard", 0, 0, "Free|Standard|Premium",                                                    \
      "Pricing tier: Free (20 connections, free_tier_daily_messages a day) or Standard/Premium (1000 per unit)") \
    X(units, INT, "0", 0, 1000, NULL,                                                                           \
      "Units: 1-10, 20, 30, ..., 100 (Premium also 200, ..., 1000); 0: 1 on Free, 100 otherwise")             \
    X(free_tier_daily_messages, INT, "20000", 1, 1000000000, NULL,                                              \
      "Free tier: messages (2 KB units of outbound client traffic) allowed per UTC day")                      \
    X(upstream_url_template, STRING, "", 0, 0, NULL,                                                             \
      "Serverless: send every hub's client events and invocations to this URL ({hub}, {category}, {event} "     \
      "placeholders); a list set through the management API replaces it")                                      \
    X(upstream_connect_event, ENUM, "off", 0, 0, "off|on",                                                       \
      "Serverless: whether an upstream event pattern '*' also sends the blocking connect event (naming "        \
      "'connect' always does)")                                                                                 \
    X(upstream_timeout_ms, INT, "20000", 100, 600000, NULL,                                                      \
      "Serverless: give up on an upstream call after this many milliseconds (per attempt, queueing included)") \
    X(upstream_max_concurrency, INT, "256", 1, 65536, NULL,                                                      \
      "Serverless: upstream calls in flight at once; more wait in a queue")                                   \
    X(upstream_max_queue, INT, "4096", 0, 1048576, NULL,                                                         \
      "Serverless: upstream calls waiting for a free slot; beyond it a call fails at once")                   \
    X(upstream_retries, INT, "3", 0, 10, NULL,                                                                   \
      "Serverless: retries (full-jitter backoff) of a failed connected/disconnected call; never for connect "  \
      "or invocations")

typedef struct sb_config {
#define SB__CFG_FIELD_STRING char *
#define SB__CFG_FIELD_INT long
#define SB__CFG_FIELD_ENUM int
#define SB__CFG_FIELD(name, type, def, min, max, values, help) SB__CFG_FIELD_##type name;
    SB_CONFIG_TABLE(SB__CFG_FIELD)
#undef SB__CFG_FIELD
    char *config_file; /* the file read, if any */
} sb_config;

/* Fill with embedded defaults. */
void sb_config_defaults(sb_config *c);
void sb_config_free(sb_config *c);
/* Set one setting from text; SB_EINVAL with a message in err on a bad value or unknown name. */
int sb_config_set(sb_config *c, const char *name, const char *value, char *err, size_t errlen);
/* Read "key = value" lines ('#' comments).  Errors name the line. */
int sb_config_load_file(sb_config *c, const char *path, char *err, size_t errlen);
/* Apply SWITCHBOARD_<NAME> environment variables. */
int sb_config_load_env(sb_config *c, char *err, size_t errlen);
/* Print every setting with its effective value (`config dump`); secrets masked unless show_secrets. */
void sb_config_dump(const sb_config *c, FILE *out, int show_secrets);
/* Print the settings table as help text. */
void sb_config_help(FILE *out);
/* The settings table as Markdown (docs/CONFIG.md). */
void sb_config_markdown(FILE *out);

#endif
