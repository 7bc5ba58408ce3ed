/*
 * samples.c - the sample query table; see samples.h.
 *
 * The "ms-" queries are Microsoft's text unchanged (including its copy of
 * the close-reasons query under the message-tracing-id title); the
 * troubleshooting queries use Switchboard's operation names from
 * docs/LOGS.md.
 */
#include "kql/samples.h"

#include <stdio.h>
#include <string.h>

#include "util/alloc.h"
#include "util/buf.h"

#define T "SignalRServiceDiagnosticLogs\n"

const sb_kql_sample sb_kql_samples[] = {
    {"ms-client-connection-ids", "Summary of the connection IDs which are client connections",
     T "| where ConnectionType == \"Client\"\n| summarize count() by ConnectionId, _ResourceId"},
    {"ms-connection-close-reasons", "Summary of close reasons for disconnected connections",
     T "| where OperationName == \"ConnectionAborted\" or OperationName == \"ConnectionEnded\" or "
       "OperationName == "
       "\"EndConnectionFailed\"\n| summarize count() by  ConnectionId, Message, _ResourceId"},
    {"ms-ip-addresses", "Summary of IPs that connected to the service",
     T "| where isnotnull(CallerIpAddress) and isnotempty(CallerIpAddress)\n"
       "| summarize count() by CallerIpAddress, _ResourceId"},
    {"ms-connection-id", "Logs relating to a specific connection ID (Microsoft's text: the ID is empty)",
     T "// Enter ConnectionId value to filter by specific connection ID.\n| where ConnectionId == \"\"\n"
       "| sort by TimeGenerated asc\n| take 100"},
    {"ms-message-tracing-id",
     "Logs relating to a specific message tracing ID (Microsoft's text, a copy of the close reasons)",
     T "| where OperationName == \"ConnectionAborted\" or OperationName == \"ConnectionEnded\" or "
       "OperationName == "
       "\"EndConnectionFailed\"\n| summarize count() by  ConnectionId, Message, _ResourceId"},
    {"ms-user-id", "Logs relating to a specific user ID (Microsoft's text: the ID is empty)",
     T "// Enter UserId value to filter by specific user ID.\n| where UserId == \"\"\n| sort by "
       "TimeGenerated asc\n"
       "| take 100"},
    {"ms-warnings-errors", "Logs with warnings or exceptions (latest first)",
     T "| where Level == \"Warning\" or Level == \"Error\"\n| sort by TimeGenerated desc, Collection asc\n| "
       "take 100"},
    {"ms-server-connection-ids", "Summary of the connection IDs which are server connections",
     T "| where ConnectionType == \"Server\"\n| summarize count() by  ConnectionId, _ResourceId"},
    {"ms-operation-timechart", "Chart of operations in time",
     T "| summarize count() by OperationName, bin(TimeGenerated, 1min)\n| render timechart"},
    {"ms-transport-types", "Summary of transport types for connections",
     T "| where isnotnull(TransportType) and isnotempty(TransportType)\n"
       "| summarize count() by TransportType, _ResourceId"},
    {"ms-user-ids", "Summary of the user IDs", T "| summarize count() by UserId, _ResourceId"},

    {"close-reasons", "Why connections closed: expected ends and aborts with their reason",
     T
     "| where OperationName in (\"ConnectionEnded\", \"ConnectionAborted\", \"EndConnectionFailed\")\n"
     "| summarize connections = dcount(ConnectionId) by OperationName, Message\n| sort by connections desc"},
    {"aborts-by-reason", "Unexpected drops (ConnectionAborted) by reason, with the latest occurrence",
     T "| where OperationName == \"ConnectionAborted\"\n"
       "| summarize aborts = count(), last = max(TimeGenerated) by Reason = Message\n| sort by aborts desc"},
    {"connections-per-user",
     "Connections opened per user: more than one per test user means the client reconnects",
     T "| where OperationName == \"ConnectionStarted\" and isnotempty(UserId)\n"
       "| summarize connections = dcount(ConnectionId), ips = make_set(CallerIpAddress) by UserId\n"
       "| sort by connections desc"},
    {"connections-per-ip", "Connections opened per client IP address",
     T "| where OperationName == \"ConnectionStarted\" and ConnectionType == \"Client\"\n"
       "| summarize connections = dcount(ConnectionId), users = dcount(UserId) by CallerIpAddress\n"
       "| sort by connections desc"},
    {"connection-growth", "Connections opened and closed per 5 minutes",
     T "| where OperationName in (\"ConnectionStarted\", \"ConnectionEnded\", \"ConnectionAborted\")\n"
       "| summarize count() by OperationName, bin(TimeGenerated, 5m)\n| render timechart"},
    {"authorization-failures", "401s: why tokens were refused (wrong audience, expired, bad signature)",
     T "| where Collection == \"Authorization\"\n"
       "| project TimeGenerated, Message, CallerIpAddress, UserId, TransportType\n| sort by TimeGenerated "
       "desc"},
    {"throttling", "Connection and message quota throttling per hour",
     T "| where Collection == \"Throttling\"\n| summarize count() by Message, bin(TimeGenerated, 1h)\n"
       "| sort by TimeGenerated desc"},
    {"connection", "Everything about one connection, oldest first (--arg connectionId=ID)",
     T "| where ConnectionId == {connectionId}\n| sort by TimeGenerated asc\n| take 1000"},
    {"user", "Everything about one user, oldest first (--arg userId=ID)",
     T "| where UserId == {userId}\n| sort by TimeGenerated asc\n| take 1000"},
    {"tracing-id", "The path of one message through the service (--arg tracingId=N)",
     T "| where MessageTracingId == tolong({tracingId})\n"
       "| project TimeGenerated, OperationName, ConnectionId, ConnectionType, MessageType, Message\n"
       "| sort by TimeGenerated asc"},
};

const size_t sb_kql_nsamples = sizeof sb_kql_samples / sizeof sb_kql_samples[0];

const sb_kql_sample *sb_kql_sample_find(const char *name) {
    for (size_t i = 0; i < sb_kql_nsamples; i++)
        if (strcmp(sb_kql_samples[i].name, name) == 0)
            return &sb_kql_samples[i];
    return NULL;
}

static const char *arg_value(const char *const *args, size_t nargs, const char *name, size_t n) {
    for (size_t i = nargs; i-- > 0;)
        if (strncmp(args[i], name, n) == 0 && args[i][n] == '=')
            return args[i] + n + 1;
    return NULL;
}

char *sb_kql_sample_expand(const sb_kql_sample *s, const char *const *args, size_t nargs, char *missing,
                           size_t cap) {
    sb_buf b;
    sb_buf_init(&b);
    for (const char *p = s->query; *p; p++) {
        const char *close = *p == '{' ? strchr(p, '}') : NULL;
        if (!close) {
            sb_buf_appendc(&b, *p);
            continue;
        }
        size_t n = (size_t)(close - p - 1);
        const char *v = arg_value(args, nargs, p + 1, n);
        if (!v) {
            if (cap)
                snprintf(missing, cap, "%.*s", (int)n, p + 1);
            sb_buf_free(&b);
            return NULL;
        }
        sb_buf_appendc(&b, '"');
        for (; *v; v++) {
            if (*v == '"' || *v == '\\')
                sb_buf_appendc(&b, '\\');
            if (*v == '\n')
                sb_buf_appends(&b, "\\n");
            else if (*v == '\r')
                sb_buf_appends(&b, "\\r");
            else
                sb_buf_appendc(&b, *v);
        }
        sb_buf_appendc(&b, '"');
        p = close;
    }
    return sb_buf_steal(&b, NULL);
}
