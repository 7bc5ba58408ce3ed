/*
 * svcproto.h - the Azure SignalR "service protocol" spoken between app servers
 * (the Microsoft.Azure.SignalR SDK) and the service: framing, decoding of every
 * message type 1-40 into one tagged struct, and byte-exact encoding.
 *
 * I/O-free: callers hand in bytes and get bytes back, so the codec can be fuzzed
 * (fuzz/fuzz_svcproto.c).  The server-connection layer owns the sockets, the
 * routing and what each message means; none of that is here.
 *
 * Wire shape: a frame is a VarInt length prefix (1-5 bytes, little-endian base
 * 128) followed by one MessagePack array [type, fields..., ext map, tail...].
 * Older SDKs send shorter arrays; newer ones may append elements or ext keys
 * we do not know.  The decoder therefore reads optional tail fields only when
 * the array is long enough, ignores trailing elements, skips unknown ext keys
 * and reports unknown message types as `unknown` instead of failing.
 *
 * Encoding copies the MessagePack-CSharp writer the SDK uses: smallest integer,
 * string, binary, array and map headers; the array lengths of the current SDK
 * writer; and only the ext keys the message type may carry, in ascending key
 * order, because SDKs up to 2024-03 do not skip keys they do not expect.
 *
 * Ownership: a decoded sb_svc_msg owns every string, list and byte block in it;
 * sb_svc_msg_clear() frees them.  A message built only to be encoded may point
 * at borrowed storage, as long as nobody calls sb_svc_msg_clear() on it.
 */
#ifndef SB_SVCPROTO_H
#define SB_SVCPROTO_H

#include <stddef.h>
#include <stdint.h>

#include "util/buf.h"

/* Message types (ServiceProtocolConstants); the number is the wire value. */
enum sb_svc_type {
    SB_SVC_HANDSHAKE_REQUEST = 1,
    SB_SVC_HANDSHAKE_RESPONSE = 2,
    SB_SVC_PING = 3,
    SB_SVC_OPEN_CONNECTION = 4,
    SB_SVC_CLOSE_CONNECTION = 5,
    SB_SVC_CONNECTION_DATA = 6,
    SB_SVC_MULTI_CONNECTION_DATA = 7,
    SB_SVC_USER_DATA = 8,
    SB_SVC_MULTI_USER_DATA = 9,
    SB_SVC_BROADCAST_DATA = 10,
    SB_SVC_JOIN_GROUP = 11,
    SB_SVC_LEAVE_GROUP = 12,
    SB_SVC_GROUP_BROADCAST_DATA = 13,
    SB_SVC_MULTI_GROUP_BROADCAST_DATA = 14,
    SB_SVC_SERVICE_ERROR = 15,
    SB_SVC_USER_JOIN_GROUP = 16,
    SB_SVC_USER_LEAVE_GROUP = 17,
    SB_SVC_JOIN_GROUP_WITH_ACK = 18,
    SB_SVC_LEAVE_GROUP_WITH_ACK = 19,
    SB_SVC_ACK = 20,
    SB_SVC_CHECK_USER_IN_GROUP_WITH_ACK = 21,
    SB_SVC_SERVICE_EVENT = 22,
    SB_SVC_CHECK_GROUP_EXISTENCE_WITH_ACK = 23,
    SB_SVC_CHECK_CONNECTION_EXISTENCE_WITH_ACK = 24,
    SB_SVC_CHECK_USER_EXISTENCE_WITH_ACK = 25,
    SB_SVC_USER_JOIN_GROUP_WITH_ACK = 26,
    SB_SVC_USER_LEAVE_GROUP_WITH_ACK = 27,
    SB_SVC_ACCESS_KEY_REQUEST = 28,
    SB_SVC_ACCESS_KEY_RESPONSE = 29,
    SB_SVC_CLOSE_CONNECTION_WITH_ACK = 30,  /* obsolete in the SDK, still parsed */
    SB_SVC_CLOSE_CONNECTIONS_WITH_ACK = 31, /* obsolete in the SDK, still parsed */
    SB_SVC_CLOSE_USER_CONNECTIONS_WITH_ACK = 32,
    SB_SVC_CLOSE_GROUP_CONNECTIONS_WITH_ACK = 33,
    SB_SVC_CLIENT_INVOCATION = 34,
    SB_SVC_CLIENT_COMPLETION = 35,
    SB_SVC_ERROR_COMPLETION = 36,
    SB_SVC_SERVICE_MAPPING = 37,
    SB_SVC_CONNECTION_RECONNECT = 38,
    SB_SVC_CONNECTION_FLOW_CONTROL = 39,
    SB_SVC_GROUP_MEMBER_QUERY = 40,
    SB_SVC_TYPE_MAX = 40
};

/* HandshakeRequest.connection_type */
enum sb_svc_server_connection_type {
    SB_SVC_CONN_DEFAULT = 0,   /* carries clients, always accepted */
    SB_SVC_CONN_ON_DEMAND = 1, /* opened after a "target" ping; may be refused */
    SB_SVC_CONN_WEAK = 2,      /* management SDK; never carries clients */
};

/* HandshakeRequest.migration_level */
enum sb_svc_migration_level {
    SB_SVC_MIGRATION_OFF = 0,
    SB_SVC_MIGRATION_SHUTDOWN_ONLY = 1,
    SB_SVC_MIGRATION_ANY = 2,
};

/* Ack.status (AckStatus) */
enum sb_svc_ack_status {
    SB_SVC_ACK_OK = 1,
    SB_SVC_ACK_NOT_FOUND = 2,
    SB_SVC_ACK_TIMEOUT = 3,
    SB_SVC_ACK_INTERNAL_SERVER_ERROR = 4,
};

/* ServiceEvent.object_type */
enum sb_svc_event_object_type {
    SB_SVC_EVENT_OBJ_SERVICE_INSTANCE = 0,
    SB_SVC_EVENT_OBJ_CONNECTION = 1,
    SB_SVC_EVENT_OBJ_USER = 2,
    SB_SVC_EVENT_OBJ_GROUP = 3,
    SB_SVC_EVENT_OBJ_SERVER_CONNECTION = 4,
};

/* ServiceEvent.kind */
enum sb_svc_event_kind {
    SB_SVC_EVENT_RELOADING = 0,
    SB_SVC_EVENT_INVALID = 1,
    SB_SVC_EVENT_NOT_EXISTED = 2,
    SB_SVC_EVENT_BUFFER_FULL = 3,
};

/* ConnectionFlowControl.connection_type (the decoder rejects other values) */
enum sb_svc_flow_connection_type {
    SB_SVC_FLOW_CLIENT = 1,
    SB_SVC_FLOW_SERVER = 2,
};

/* ConnectionFlowControl.operation (the decoder rejects other values) */
enum sb_svc_flow_operation {
    SB_SVC_FLOW_PAUSE = 1,
    SB_SVC_FLOW_PAUSE_ACK = 2,
    SB_SVC_FLOW_RESUME = 3,
    SB_SVC_FLOW_OFFLINE = 4,
};

/* Ext key 5, ConnectionData.data_message_type */
enum sb_svc_data_message_type {
    SB_SVC_DATA_UNKNOWN = 0,
    SB_SVC_DATA_HANDSHAKE = 1,
    SB_SVC_DATA_INVOCATION = 2,
    SB_SVC_DATA_OTHER = 3,
    SB_SVC_DATA_CLOSE = 4,
};

/* Ext map keys, as bits for sb_svc_ext_allowed(). */
enum sb_svc_ext_key {
    SB_SVC_EXT_TRACING_ID = 1,
    SB_SVC_EXT_TTL = 2,
    SB_SVC_EXT_PROTOCOL = 3,
    SB_SVC_EXT_FILTER = 4,
    SB_SVC_EXT_DATA_MESSAGE_TYPE = 5,
    SB_SVC_EXT_IS_PARTIAL = 6,
};
#define SB_SVC_EXT_BIT(key) (1u << (key))

/* ---- ping keys and values (spelled as on the wire) ----------------------- */

#define SB_SVC_PING_CLIENT_IN_HUB "#clientInHub" /* A: clients in this hub on this server */
#define SB_SVC_PING_CLIENT "#client"             /* A: clients on this server connection */
#define SB_SVC_PING_STATUS "status"              /* A asks "1"; S answers "1" active / "0" */
#define SB_SVC_PING_CLIENT_COUNT "clientcount"   /* S, with status: decimal */
#define SB_SVC_PING_SERVER_COUNT "servercount"   /* S, with status: decimal */
#define SB_SVC_PING_CAPACITY "capacity"          /* S, with status: decimal */
#define SB_SVC_PING_SERVERS "servers"            /* A asks ""; S answers "<ticks>:<id1>;<id2>..." */
#define SB_SVC_PING_TARGET "target"              /* S: open an OnDemand connection to this instance */
#define SB_SVC_PING_OFFLINE "offline"            /* S: this service instance went away */
#define SB_SVC_PING_SHUTDOWN "shutdown"          /* A: fin:N; S: finack */
#define SB_SVC_PING_ECHO "echo"                  /* both: peer writes the identical ping back */
#define SB_SVC_PING_MESSAGING_LOGS "d-m"         /* S: "collect all" messaging logs "1"/"0"; own ping */

#define SB_SVC_PING_STATUS_ACTIVE "1"
#define SB_SVC_PING_STATUS_INACTIVE "0"
#define SB_SVC_PING_MESSAGING_LOGS_ON "1"
#define SB_SVC_PING_MESSAGING_LOGS_OFF "0"
#define SB_SVC_PING_SHUTDOWN_FIN "fin:0"            /* graceful shutdown, mode Off */
#define SB_SVC_PING_SHUTDOWN_FIN_MIGRATE "fin:1"    /* mode MigrateClients */
#define SB_SVC_PING_SHUTDOWN_FIN_KEEP_ALIVE "fin:2" /* mode WaitForClientsClose */
#define SB_SVC_PING_SHUTDOWN_FIN_ACK "finack"

/* OpenConnection / CloseConnection headers the service adds (names compared case-insensitively). */
#define SB_SVC_HEADER_INSTANCE_ID "Asrs-Instance-Id"
#define SB_SVC_HEADER_MIGRATE_FROM "Asrs-Migrate-From"
#define SB_SVC_HEADER_MIGRATE_TO "Asrs-Migrate-To"
#define SB_SVC_HEADER_IS_DIAGNOSTIC_CLIENT "Asrs-Is-Diagnostic-Client"

/* ---- the message --------------------------------------------------------- */

typedef struct sb_svc_strv {
    char **v; /* never contains NULL: a nil element decodes as "" */
    size_t n; /* 0 with v NULL for an empty list */
} sb_svc_strv;

typedef struct sb_svc_bytes {
    uint8_t *data; /* NULL = nil; a decoded empty bin is non-NULL with len 0 */
    size_t len;
} sb_svc_bytes;

typedef struct sb_svc_payload {
    char *protocol; /* hub protocol name ("json", "messagepack"); match case-insensitively */
    sb_svc_bytes bytes;
} sb_svc_payload;

typedef struct sb_svc_payloads {
    sb_svc_payload *v; /* in wire order; duplicates kept */
    size_t n;
} sb_svc_payloads;

typedef struct sb_svc_header {
    char *name;
    sb_svc_strv values;
} sb_svc_header;

typedef struct sb_svc_headers {
    sb_svc_header *v; /* in wire order */
    size_t n;
} sb_svc_headers;

typedef struct sb_svc_claim {
    char *type;
    char *value;
} sb_svc_claim;

typedef struct sb_svc_claims {
    sb_svc_claim *v; /* in wire order; the same type may repeat */
    size_t n;
} sb_svc_claims;

/*
 * One message of any type.  Fields not used by `type` stay zero/NULL.  Scalar
 * strings are NULL when nil; strings inside lists and maps are never NULL.
 * Wire layout per type ("ext" = extension map, "?" = read only when the array
 * is long enough, "!" = nil is rejected on decode):
 *
 *  1 HandshakeRequest   version, connection_type?, target?, migration_level?, ext?,
 *                       allow_stateful_reconnects? (written as "" target when connection_type is 0)
 *  2 HandshakeResponse  error, ext?, connection_id?        (NULL/"" error = success)
 *  3 Ping               strings (flat key/value list; see sb_svc_ping_*)
 *  4 OpenConnection     connection_id!, claims, headers?, query_string?, ext?
 *  5 CloseConnection    connection_id!, error, headers?, ext?    (NULL error is written as "")
 *  6 ConnectionData     connection_id!, payload, ext?
 *  7 MultiConnectionData  connection_ids, payloads, ext?
 *  8 UserData           user_id!, payloads, ext?
 *  9 MultiUserData      user_ids, payloads, ext?
 * 10 BroadcastData      excluded, payloads, ext?
 * 11 JoinGroup          connection_id!, group!, ext?
 * 12 LeaveGroup         connection_id!, group (NULL = all groups), ext?
 * 13 GroupBroadcastData group!, excluded, payloads, ext?, excluded_user_ids?, caller_user_id?
 * 14 MultiGroupBroadcastData  groups, payloads, ext?
 * 15 ServiceError       error                                         (no ext)
 * 16 UserJoinGroup      user_id!, group!, ext?
 * 17 UserLeaveGroup     user_id!, group (NULL = all groups), ext?
 * 18 JoinGroupWithAck   connection_id!, group!, ack_id, ext?
 * 19 LeaveGroupWithAck  connection_id!, group, ack_id, ext?
 * 20 Ack                ack_id, status, message, ext?, payload? (NULL data = nil)
 * 21 CheckUserInGroupWithAck  user_id!, group!, ack_id, ext?
 * 22 ServiceEvent       object_type, object_id, kind, message, ext
 * 23 CheckGroupExistenceWithAck       group!, ack_id, ext
 * 24 CheckConnectionExistenceWithAck  connection_id!, ack_id, ext
 * 25 CheckUserExistenceWithAck        user_id!, ack_id, ext
 * 26 UserJoinGroupWithAck   user_id!, group!, ack_id, ext
 * 27 UserLeaveGroupWithAck  user_id!, group, ack_id, ext
 * 28 AccessKeyRequest   aad_token, kid, ext
 * 29 AccessKeyResponse  kid, access_key, error_type, error, ext
 * 30 CloseConnectionWithAck   connection_id!, reason, ack_id, ext?
 * 31 CloseConnectionsWithAck  reason, ack_id, excluded, ext?
 * 32 CloseUserConnectionsWithAck   user_id!, reason, ack_id, excluded, ext?
 * 33 CloseGroupConnectionsWithAck  group!, reason, ack_id, excluded, ext?
 * 34 ClientInvocation   invocation_id!, connection_id!, caller_server_id!, payloads, ext
 * 35 ClientCompletion   invocation_id!, connection_id!, caller_server_id!, protocol, payload, ext
 *                       (protocol is also written as ext key 3; an ext value wins on decode)
 * 36 ErrorCompletion    invocation_id!, connection_id!, caller_server_id!, error, ext
 * 37 ServiceMapping     invocation_id!, connection_id!, instance_id!, ext
 * 38 ConnectionReconnect  connection_id!, ext
 * 39 ConnectionFlowControl  connection_id!, connection_type, operation, ext (ints always int32
 *                       "d2"; the ext is written but, as in the SDK, not read)
 * 40 GroupMemberQuery   ext, group!, ack_id, max_count, continuation_token
 *
 * Ext keys per type (sb_svc_ext_allowed()): 1 tracing_id on 4-14, 16-19, 21,
 * 23-27, 30-36, 40; 2 ttl on 16, 26; 3 protocol on 4, 35; 4 filter on 7-10, 13,
 * 14; 5 data_message_type and 6 is_partial on 6.  A key a type does not carry
 * is skipped on decode and never encoded.  Types 3 and 15 have no map at all.
 */
typedef struct sb_svc_msg {
    int type;          /* enum sb_svc_type, or the number read when unknown */
    int unknown;       /* 1: a type this codec does not know; only `type` is set */
    int legacy_layout; /* decoded from a shorter array than our writer's; see sb_svc_encode() */

    char *connection_id;
    char *user_id;
    char *group;
    char *invocation_id;
    char *caller_server_id;
    char *instance_id;
    char *caller_user_id;
    char *target;
    char *query_string;
    char *error;
    char *message;
    char *reason;
    char *object_id;
    char *aad_token;
    char *kid;
    char *access_key;
    char *error_type;
    char *continuation_token;

    sb_svc_strv strings;           /* Ping */
    sb_svc_strv connection_ids;    /* MultiConnectionData targets */
    sb_svc_strv user_ids;          /* MultiUserData targets */
    sb_svc_strv groups;            /* MultiGroupBroadcastData targets */
    sb_svc_strv excluded;          /* excluded connection ids (10, 13, 31, 32, 33) */
    sb_svc_strv excluded_user_ids; /* GroupBroadcastData */
    sb_svc_payloads payloads;
    sb_svc_headers headers;
    sb_svc_claims claims;
    sb_svc_bytes payload; /* ConnectionData, Ack, ClientCompletion */

    int32_t version;
    int32_t connection_type; /* HandshakeRequest, ConnectionFlowControl */
    int32_t migration_level;
    int32_t ack_id;
    int32_t status;
    int32_t object_type;
    int32_t kind;
    int32_t operation;
    int32_t max_count;
    int allow_stateful_reconnects;

    /* extension members */
    int has_tracing_id;
    uint64_t tracing_id;
    int has_ttl;
    int32_t ttl; /* seconds */
    char *protocol;
    char *filter;
    int has_data_message_type;
    int32_t data_message_type; /* enum sb_svc_data_message_type; 0 is never written */
    int has_is_partial;
    int is_partial; /* false is never written */
} sb_svc_msg;

/* ---- framing ------------------------------------------------------------- */

/*
 * Find the next frame in a byte stream.
 * SB_OK: *body is the MessagePack body (pointing into data), *consumed the bytes
 * used including the prefix.  SB_EAGAIN: the prefix or the body is incomplete.
 * SB_E2BIG: the declared length exceeds max_message (reported as soon as the
 * prefix is complete, before the body arrives).  SB_EPROTO: bad prefix (a 5th
 * byte over 7 or with the continuation bit, i.e. 2 GB or more).
 */
int sb_svc_split(const uint8_t *data, size_t len, size_t max_message, sb_slice *body, size_t *consumed);

/* ---- decoding ------------------------------------------------------------ */

/*
 * Decode one unframed message body.  *out is overwritten (it need not be
 * initialised).  SB_OK: *out holds the message; an unknown type is SB_OK with
 * out->unknown = 1 (the caller drops it).  SB_EPROTO: the message is malformed,
 * *err (if err is non-NULL) is a static description naming the bad field, and
 * *out is left cleared except for out->type (0 if the type itself was unreadable);
 * the frame boundary is still intact, so the caller may drop only this message.
 * Allocation is bounded by a small multiple of len.  Strings containing a NUL
 * byte are rejected: ids are used as C strings downstream.
 */
int sb_svc_decode(const uint8_t *body, size_t len, sb_svc_msg *out, const char **err);

/* Free everything a message owns and zero it.  Safe on a zeroed message. */
void sb_svc_msg_clear(sb_svc_msg *m);

/* ---- encoding ------------------------------------------------------------ */

/*
 * Append one FRAMED message (VarInt prefix + body) to out.  Writes the current
 * SDK's array layout for m->type: HandshakeRequest 7 elements, Ack 6 (nil
 * payload unless payload.data is set).  When m->legacy_layout is set and the
 * newer tail field holds its default (allow_stateful_reconnects 0, Ack payload
 * NULL), the older layout is written instead (HandshakeRequest 6, Ack 5), so a
 * decoded older message re-encodes to its original bytes.  An unknown type is
 * written as [type] so tests can round-trip it; the service never sends one.
 * The body must stay under the protocol's 2 GB frame limit; configured message
 * size limits keep every real message far below it.
 */
void sb_svc_encode(const sb_svc_msg *m, sb_buf *out);

/* ---- helpers ------------------------------------------------------------- */

/* SDK class name of a type ("BroadcastDataMessage"), as messaging logs print it;
 * "UnknownMessage" for anything else. */
const char *sb_svc_type_name(int type);

/* Bit set of SB_SVC_EXT_BIT(key) for the ext keys `type` may carry (0 if none). */
unsigned sb_svc_ext_allowed(int type);

/* First payload whose protocol equals `protocol` ignoring case, or NULL. */
const sb_svc_payload *sb_svc_payload_find(const sb_svc_msg *m, const char *protocol);

/* First header whose name equals `name` ignoring case, or NULL. */
const sb_svc_header *sb_svc_header_find(const sb_svc_msg *m, const char *name);

/*
 * Make *m a Ping carrying copies of the n strings kv[0..n) (key, value, key,
 * value, ...; n = 0 is the plain keep-alive [3]).  *m is overwritten; release it
 * with sb_svc_msg_clear().  A NULL string is written as nil.
 */
void sb_svc_ping_build(sb_svc_msg *m, const char *const *kv, size_t n);

/* Append a framed Ping of the n strings kv[0..n) without building a message. */
void sb_svc_ping_write(sb_buf *out, const char *const *kv, size_t n);

/*
 * Look `key` up in a Ping as the SDK does: pairs start at even indices and the
 * first match wins; a trailing key without a value does not match.
 * Returns 1 and sets *value (if value is non-NULL), or 0 if absent or m is not a Ping.
 */
int sb_svc_ping_get(const sb_svc_msg *m, const char *key, const char **value);

#endif
