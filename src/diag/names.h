/*
 * names.h - every Azure-facing string of the resource logs, spelled exactly as
 * Azure SignalR Service documents them, in one place so they can be grepped
 * and tested.  Operation names Azure does not publish (messaging and HTTP
 * request events, the activity log) are chosen here and documented in
 * docs/LOGS.md; they follow Azure's verb-noun PascalCase style.
 */
#ifndef SB_DIAG_NAMES_H
#define SB_DIAG_NAMES_H

/* categories and log types */
#define SB_LOG_CATEGORY_ALLLOGS "AllLogs"
#define SB_LOG_TYPE_CONNECTIVITY "ConnectivityLogs"
#define SB_LOG_TYPE_MESSAGING "MessagingLogs"
#define SB_LOG_TYPE_HTTP "HttpRequestLogs"

/* collections */
#define SB_LOG_COLLECTION_CONNECTION "Connection"
#define SB_LOG_COLLECTION_AUTHORIZATION "Authorization"
#define SB_LOG_COLLECTION_THROTTLING "Throttling"
#define SB_LOG_COLLECTION_MESSAGE "Message"

/* levels */
#define SB_LOG_LEVEL_INFORMATIONAL "Informational"
#define SB_LOG_LEVEL_WARNING "Warning"
#define SB_LOG_LEVEL_ERROR "Error"
#define SB_LOG_LEVEL_CRITICAL "Critical"

/* transport and connection types */
#define SB_LOG_TRANSPORT_WEBSOCKETS "WebSockets"
#define SB_LOG_TRANSPORT_SSE "ServerSentEvents"
#define SB_LOG_TRANSPORT_LONGPOLLING "LongPolling"
#define SB_LOG_CONNECTION_TYPE_CLIENT "Client"
#define SB_LOG_CONNECTION_TYPE_SERVER "Server"

/* connectivity operation names (documented by Azure) */
#define SB_OP_CONNECTION_STARTED "ConnectionStarted"
#define SB_OP_CONNECTION_ENDED "ConnectionEnded"
#define SB_OP_CONNECTION_ABORTED "ConnectionAborted"
#define SB_OP_SERVERLESS_MODE_ENTERED "ServerlessModeEntered"
/* chosen here: authorization failures and throttling */
#define SB_OP_AUTHORIZATION_FAILED "AuthorizationFailed"
#define SB_OP_CONNECTION_THROTTLED "ConnectionThrottled"
#define SB_OP_MESSAGE_THROTTLED "MessageThrottled"
/* chosen here: messaging events (one per template below) */
#define SB_OP_MESSAGE_RECEIVED_FROM_CLIENT "MessageReceivedFromClient"
#define SB_OP_MESSAGE_SENT_TO_SERVER "MessageSentToServer"
#define SB_OP_MESSAGE_RECEIVED_FROM_SERVER "MessageReceivedFromServer"
#define SB_OP_MESSAGE_SENT_TO_CLIENT "MessageSentToClient"
/* chosen here: HTTP request logs */
#define SB_OP_HTTP_REQUEST "HttpRequest"
/* chosen here: pipeline health (dropped records) */
#define SB_OP_LOG_RECORDS_DROPPED "LogRecordsDropped"
/* chosen here, after Azure's close category: a serverless upstream call failed */
#define SB_OP_INVOKE_UPSTREAM_FAILED "InvokeUpstreamFailed"

/* connectivity messages */
#define SB_MSG_CONNECTION_STARTED "Connection started"
#define SB_MSG_CONNECTION_ENDED "Connection ended"
#define SB_MSG_SERVERLESS_MODE_ENTERED "Entered Serverless mode."
/* abort reasons, exactly as the seed lists them */
#define SB_MSG_CONNECTION_COUNT_REACHES_LIMIT "Connection count reaches limit"
#define SB_MSG_APP_SERVER_CLOSED "Application server closed the connection"
#define SB_MSG_PING_TIMEOUT "Connection ping timeout"
#define SB_MSG_SERVICE_RELOADING "Service reloading, try reconnecting"
#define SB_MSG_INTERNAL_TRANSIENT_ERROR "Internal server transient error"
#define SB_MSG_SERVER_CONNECTION_DROPPED "Server connection dropped"
#define SB_MSG_MESSAGE_COUNT_REACHES_LIMIT "Message count reaches limit"

/* messaging templates (printf formats; %llu = tracing id, %s = connection id / message type) */
#define SB_MSG_FMT_RECEIVED_FROM_CLIENT "Received a message %llu from client connection %s."
#define SB_MSG_FMT_SENT_TO_SERVER "Sent a message %llu to server connection %s successfully."
#define SB_MSG_FMT_RECEIVED_FROM_SERVER "Received a %s message %llu from server connection %s."
/* SentToClient comes in pieces for fan-out records: each recipient's connection id goes between them */
#define SB_MSG_FMT_SENT_TO_CLIENT_HEAD "Sent a message %llu to client connection "
#define SB_MSG_SENT_TO_CLIENT_TAIL " successfully."
#define SB_MSG_FMT_SENT_TO_CLIENT SB_MSG_FMT_SENT_TO_CLIENT_HEAD "%s" SB_MSG_SENT_TO_CLIENT_TAIL

/* chosen here: the InvokeUpstreamFailed message (%s = category, event, the failure as the client sees it) */
#define SB_MSG_FMT_INVOKE_UPSTREAM_FAILED "Failed to invoke upstream for event %s/%s: %s"
/* the ConnectionAborted reason when an upstream failure closes a client without a text */
#define SB_MSG_INVOKE_UPSTREAM_FAILED "Invoke upstream failed"

/* chosen here: the LogRecordsDropped message (%llu = how many, %s = one of the reasons below) */
#define SB_MSG_FMT_LOG_RECORDS_DROPPED "%llu log records were dropped: %s."
#define SB_MSG_DROP_REASON_QUEUE_FULL "the log queue was full"
#define SB_MSG_FMT_DROP_REASON_DESTINATION "%s '%s' is unavailable (%s)" /* kind, name, why */

/* activity log (Azure's Administrative category) */
#define SB_ACTIVITY_CATEGORY_ADMINISTRATIVE "Administrative"
#define SB_ACTIVITY_RESOURCE_PROVIDER "MICROSOFT.SIGNALRSERVICE"

/* workspace tables */
#define SB_TABLE_DIAGNOSTIC_LOGS "SignalRServiceDiagnosticLogs"
#define SB_TABLE_ACTIVITY "AzureActivity"
#define SB_TABLE_METRICS "AzureMetrics"

/* archive containers */
#define SB_CONTAINER_LOGS "insights-logs-alllogs"
#define SB_CONTAINER_ACTIVITY "insights-activity-logs"
#define SB_CONTAINER_METRICS "insights-metrics-pt1m"

/* platform metrics exported by diagnostic settings (AzureMetrics rows, metrics archive) */
#define SB_METRICS_CATEGORY_ALLMETRICS "AllMetrics"
#define SB_METRICS_RESOURCE_PROVIDER "MICROSOFT.SIGNALRSERVICE"
#define SB_METRICS_TIME_GRAIN "PT1M"

#endif
