/*
 * hub.h - hubs, client connections, groups and users: the router's indexes.
 *
 * Owns the in-memory model every send resolves against:
 *
 *   sb_router --hubs--> sb_hub --clients (by connectionId)--> sb_client
 *                              --groups (by name)---------> sb_group --members--> sb_member --> sb_client
 *                              --users (by user id)-------> sb_user  --clients--> sb_client
 *   sb_router --tokens (by connectionToken, intrusive: util/ihash.h)--> sb_client
 *
 * Two-way indexes: a membership node (sb_member) is linked into its group's
 * list AND its client's list, so joining, leaving and closing are O(1) per
 * membership and never scan a group.  A user keeps the list of its clients and
 * its user-level group memberships (with optional expiry), which new
 * connections of the user inherit.
 *
 * Fan-out (router.c) walks a target set and hands one shared sb_msg to each
 * client; duplicates across groups and excluded connections are skipped with
 * a per-send epoch mark on the client (no temporary sets).
 *
 * Backplane seam: every operation that changes membership or sends a message
 * enters through the sb_router_* functions below.  A scale-out backplane will
 * publish the operation there and apply remote operations through the same
 * functions with `local_only` semantics; nothing else touches the indexes.
 *
 * Not here: sockets and framing (net/), the hub protocols (signalr/), HTTP
 * routes (rest/).
 */
#ifndef SB_HUB_H
#define SB_HUB_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "hub/msg.h"
#include "net/outq.h"
#include "signalr/hubproto.h"
#include "util/buf.h"
#include "util/dict.h"
#include "util/ihash.h"
#include "util/intern.h"
#include "util/list.h"

struct sb_conn;
struct sb_server;

#define SB_ID_LEN 22 /* 16 random bytes, base64url */

typedef enum sb_transport {
    SB_TRANSPORT_NONE = 0,
    SB_TRANSPORT_WEBSOCKETS = 1,
    SB_TRANSPORT_SSE = 2,
    SB_TRANSPORT_LONGPOLLING = 4,
} sb_transport;

typedef enum sb_client_state {
    SB_CLIENT_NEGOTIATED = 0, /* negotiate answered, transport not connected yet */
    SB_CLIENT_HANDSHAKE,      /* transport connected, waiting for the hub handshake */
    SB_CLIENT_CONNECTED,      /* handshake done */
    SB_CLIENT_CLOSED,         /* removed from the indexes; freed when no transport refers to it */
} sb_client_state;

typedef struct sb_hub sb_hub;
typedef struct sb_user sb_user;
typedef struct sb_group sb_group;

/*
 * A client's time stamps: the low 32 bits of sb_now_ms().  Each is only ever compared with a
 * timeout the sweep enforces (at most an hour), so the elapsed time sb_stamp_since() computes in
 * 32-bit arithmetic is exact although the clock passes 2^32 ms every 49.7 days.
 */
typedef uint32_t sb_stamp_ms;
static inline sb_stamp_ms sb_stamp(uint64_t now_ms) { return (sb_stamp_ms)now_ms; }
static inline uint32_t sb_stamp_since(uint64_t now_ms, sb_stamp_ms stamp) { return (sb_stamp_ms)now_ms - stamp; }

/* Long polling only (allocated when the first poll makes the transport LONGPOLLING). */
typedef struct sb_longpoll {
    sb_outq queue;              /* payloads waiting for the next poll */
    uint64_t transport_lost_ms; /* when the last poll ended (0 = a poll is parked) */
    uint64_t poll_deadline_ms;  /* when the parked poll is answered empty */
} sb_longpoll;

/*
 * A SignalR client connection (the logical connection, whatever its transport).
 *
 * Memory: tens of thousands of idle clients are the service's density limit,
 * so the struct stays small (field order, narrow enums, state of one
 * transport out of line) and holds no copy of a string others hold too:
 * user_id and query are interned (router->strings), claims are shared by
 * every client with equal claims (router->claims).
 */
typedef struct sb_client {
    char id[SB_ID_LEN + 1];    /* public connectionId */
    char token[SB_ID_LEN + 1]; /* secret connectionToken (== id for negotiate v0) */
    sb_client_state state : 8;
    sb_transport transport : 8;
    sb_hub *hub;
    sb_user *user;       /* NULL for anonymous */
    const char *user_id; /* interned */
    /* Shared, read-only: the claims this client's later messages carry.  Default mode: the whole token
     * payload until OpenConnection has passed it to the app server, then NULL.  Serverless: only the
     * claims an upstream call carries (X-ASRS-User-Claims), NULL when none. */
    json_t *claims;
    const char *query;   /* interned: the connect query string (without '?', id and access_token) */
    struct sb_conn *conn; /* WS / SSE socket; for LP the parked poll, or NULL */
    sb_longpoll *lp;      /* transport LONGPOLLING */
    sb_buf *in;           /* hub-protocol bytes received, not yet a whole message (NULL: none) */
    sb_list members;      /* sb_member.client_link */
    sb_list user_link;    /* in sb_user.clients */
    sb_ihash_node token_link; /* in router->tokens, keyed by token */
    uint64_t mark;        /* fan-out epoch (dedupe / exclusion) */
    sb_stamp_ms state_ms;     /* entered NEGOTIATED / HANDSHAKE: the negotiate and handshake timeouts run from it */
    sb_stamp_ms last_recv_ms; /* last byte from the client */
    sb_stamp_ms last_send_ms; /* last message queued to the client */
    int refs;                 /* held by the router indexes and by a parked transport */
    char caller_ip[46];
    sb_hub_protocol protocol : 8;
    unsigned diagnostic : 1; /* diagnostic client (asrs.s.dc) */
    unsigned lingering : 1;  /* CLOSED but still in router->tokens (see sb_client_forget) */
    struct sb_server_conn *server; /* default mode: the app-server connection this client is routed to */
    sb_list server_node;           /* in that server connection's client list */
    json_t *headers;               /* default mode: connect request headers, until OpenConnection (owned) */
    sb_dict pending_invocations;   /* default mode: client-result invocation id -> caller server id (owned) */
} sb_client;

struct sb_group {
    char *name;
    sb_hub *hub;
    sb_list members; /* sb_member.group_link */
    size_t count;
};

typedef struct sb_member {
    sb_group *group;
    sb_client *client;
    sb_list group_link;
    sb_list client_link;
} sb_member;

/* A user-level group membership (REST add user to group), inherited by new connections. */
typedef struct sb_user_group {
    uint64_t expires_ms; /* 0 = no expiry */
} sb_user_group;

struct sb_user {
    char *id;
    sb_hub *hub;
    sb_list clients; /* sb_client.user_link */
    size_t count;
    sb_dict groups; /* group name -> sb_user_group* */
};

struct sb_hub {
    char *name;
    struct sb_router *router;
    sb_dict clients; /* connectionId -> sb_client* */
    sb_dict groups;  /* name -> sb_group* */
    sb_dict users;   /* user id -> sb_user* */
    struct sb_hub_servers *servers; /* default mode: app-server connections of this hub (service/) */
};

typedef struct sb_router {
    struct sb_server *srv;
    sb_dict hubs;   /* name (lower-case) -> sb_hub* */
    sb_ihash tokens; /* connectionToken -> sb_client (through sb_client.token_link) */
    sb_intern strings; /* user ids and query strings of clients */
    sb_dict claims;    /* canonical JSON text -> claim set shared by the clients that hold it (router.c) */
    uint64_t epoch;
    size_t nclients; /* connected + negotiated client connections */
} sb_router;

void sb_router_init(sb_router *r, struct sb_server *srv);
/* Closes nothing: the caller closes clients first. */
void sb_router_free(sb_router *r);

/* Hub names: ^[A-Za-z][A-Za-z0-9_`,.[\]]{0,127}$ ; 1 if valid. */
int sb_hub_name_valid(const char *name);
/* Find or create (lower-cased name). */
sb_hub *sb_router_hub(sb_router *r, const char *name);
sb_hub *sb_router_find_hub(sb_router *r, const char *name);

/* ---- client connections ---- */
/* New negotiated client in hub (ids generated; v0 token == id).  Takes ownership of claims (may be NULL)
 * and keeps them shared with every client whose claims are equal. */
sb_client *sb_client_new(sb_router *r, sb_hub *hub, const char *user_id, json_t *claims, int negotiate_version);
/* Replace the client's user id (an upstream connect answer may set one); NULL or "" for anonymous. */
void sb_client_set_user_id(sb_client *c, const char *user_id);
/* Replace the client's connect query string (kept interned). */
void sb_client_set_query(sb_client *c, const char *query, size_t len);
/* Stop holding what only an OpenConnection needed: claims, request headers and query (default mode,
 * once the app server has them). */
void sb_client_forget_request(sb_client *c);
sb_client *sb_router_find_token(sb_router *r, const char *token);
sb_client *sb_hub_find_client(sb_hub *hub, const char *connection_id);
/* Remove from every index and group (state CLOSED).  Drops the router's reference. */
/* Handshake done: enter hub->clients, the user index, and the user's remembered groups. */
void sb_client_activate(sb_client *c);
void sb_client_unlink(sb_client *c);
/* Drop a CLOSED long-polling client kept only so its last poll can collect the Close message. */
void sb_client_forget(sb_client *c);
static inline void sb_client_ref(sb_client *c) { c->refs++; }
void sb_client_unref(sb_client *c);

/* ---- delivery (router.c) ---- */
/* Deliver one message to one client through its transport.  Returns SB_ENOSPC when the client
 * is a slow consumer (the caller's fan-out closes it after the loop). */
int sb_client_deliver(sb_client *c, sb_msg *m);

typedef struct sb_exclude {
    const char *const *ids; /* connection ids */
    size_t n;
} sb_exclude;

/* Each returns the number of clients the message was queued to. */
size_t sb_router_broadcast(sb_hub *hub, sb_msg *m, const sb_exclude *ex);
size_t sb_router_send_user(sb_hub *hub, const char *user_id, sb_msg *m);
size_t sb_router_send_users(sb_hub *hub, const char *const *user_ids, size_t n, sb_msg *m);
size_t sb_router_send_connection(sb_hub *hub, const char *connection_id, sb_msg *m);
size_t sb_router_send_connections(sb_hub *hub, const char *const *ids, size_t n, sb_msg *m);
size_t sb_router_send_group(sb_hub *hub, const char *group, sb_msg *m, const sb_exclude *ex);
size_t sb_router_send_groups(sb_hub *hub, const char *const *groups, size_t n, sb_msg *m);

/* ---- membership ---- */
/* SB_ENOENT if the connection does not exist. */
int sb_router_group_add(sb_hub *hub, const char *group, const char *connection_id);
/* SB_ENOENT if the connection does not exist; removing a non-member is SB_OK. */
int sb_router_group_remove(sb_hub *hub, const char *group, const char *connection_id);
int sb_router_group_remove_all(sb_hub *hub, const char *connection_id);
/* ttl_seconds < 0: no expiry.  ttl 0: only current connections join (nothing remembered). */
void sb_router_user_group_add(sb_hub *hub, const char *user_id, const char *group, long ttl_seconds);
void sb_router_user_group_remove(sb_hub *hub, const char *user_id, const char *group);
void sb_router_user_group_remove_all(sb_hub *hub, const char *user_id);

/* ---- existence ---- */
int sb_router_connection_exists(sb_hub *hub, const char *connection_id);
int sb_router_user_exists(sb_hub *hub, const char *user_id);    /* has a connected client */
int sb_router_group_exists(sb_hub *hub, const char *group);     /* has a member */
int sb_router_user_in_group(sb_hub *hub, const char *user_id, const char *group);

/* ---- closing ---- */
/* Close a client from the application side (REST / app server): Close message with reason,
 * then the transport closes.  SB_ENOENT if unknown. */
int sb_router_close_connection(sb_hub *hub, const char *connection_id, const char *reason);
/* Close every connection of a hub / group / user, minus excluded. */
size_t sb_router_close_hub(sb_hub *hub, const char *reason, const sb_exclude *ex);
size_t sb_router_close_group(sb_hub *hub, const char *group, const char *reason, const sb_exclude *ex);
size_t sb_router_close_user(sb_hub *hub, const char *user_id, const char *reason, const sb_exclude *ex);

#endif
