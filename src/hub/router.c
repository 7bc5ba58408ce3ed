/*
 * router.c - the indexes of hub.h and the fan-out over them.
 *
 * Invariants:
 *  - a client is in router->tokens from negotiate until it is unlinked; it is
 *    in hub->clients, its user's list and groups only while CONNECTED (after
 *    the hub handshake), so sends and REST existence checks never see a
 *    half-open connection;
 *  - a group exists in hub->groups exactly while it has members; a user exists
 *    in hub->users while it has clients or remembered user-group memberships;
 *  - fan-out never closes a client while walking a list: slow consumers are
 *    collected and closed after the walk.
 */
#include <ctype.h>
#include <string.h>

#include "hub/hub.h"
#include "net/conn.h"
#include "server.h"
#include "signalr/client.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/random.h"

/* ---- hubs ----------------------------------------------------------------- */

void sb_router_init(sb_router *r, struct sb_server *srv) {
    memset(r, 0, sizeof(*r));
    r->srv = srv;
    sb_dict_init(&r->hubs);
    sb_ihash_init(&r->tokens, SB_IHASH_KEY_OFF(sb_client, token_link, token), SB_ID_LEN);
    sb_intern_init(&r->strings);
    sb_dict_init(&r->claims);
}

static void user_free(sb_user *u) {
    sb_dict_iter it;
    sb_dict_iter_init(&it, &u->groups);
    for (sb_dict_entry *e; (e = sb_dict_next(&it));)
        sb_free(e->value);
    sb_dict_free(&u->groups);
    sb_free(u->id);
    sb_free(u);
}

void sb_router_free(sb_router *r) {
    sb_dict_iter it;
    sb_dict_iter_init(&it, &r->hubs);
    for (sb_dict_entry *e; (e = sb_dict_next(&it));) {
        sb_hub *h = e->value;
        sb_dict_iter ui;
        sb_dict_iter_init(&ui, &h->users);
        for (sb_dict_entry *ue; (ue = sb_dict_next(&ui));)
            user_free(ue->value);
        sb_dict_free(&h->users);
        sb_dict_free(&h->clients);
        sb_dict_free(&h->groups); /* empty: groups die with their last member */
        sb_free(h->name);
        sb_free(h);
    }
    sb_dict_free(&r->hubs);
    sb_ihash_free(&r->tokens);
    /* clients are gone (the caller closed them), and with them every holder of these */
    sb_intern_free(&r->strings);
    sb_dict_free(&r->claims);
}

int sb_hub_name_valid(const char *name) {
    size_t n = strlen(name);
    if (n < 1 || n > 128 || !isalpha((unsigned char)name[0]))
        return 0;
    for (size_t i = 1; i < n; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!(isalnum(ch) || strchr("_`,.[]", ch)))
            return 0;
    }
    return 1;
}

static void lower_copy(const char *s, char *out, size_t outlen) {
    size_t i = 0;
    for (; s[i] && i + 1 < outlen; i++)
        out[i] = (char)tolower((unsigned char)s[i]);
    out[i] = '\0';
}

sb_hub *sb_router_find_hub(sb_router *r, const char *name) {
    char key[160];
    lower_copy(name, key, sizeof key);
    return sb_dict_gets(&r->hubs, key);
}

sb_hub *sb_router_hub(sb_router *r, const char *name) {
    char key[160];
    lower_copy(name, key, sizeof key);
    sb_hub *h = sb_dict_gets(&r->hubs, key);
    if (h)
        return h;
    h = sb_calloc(1, sizeof(*h));
    h->name = sb_strdup(key);
    h->router = r;
    sb_dict_init(&h->clients);
    sb_dict_init(&h->groups);
    sb_dict_init(&h->users);
    sb_dict_set(&r->hubs, key, strlen(key), h);
    return h;
}

/* ---- users and groups ------------------------------------------------------ */

static sb_user *user_get(sb_hub *hub, const char *id, int create) {
    sb_user *u = sb_dict_gets(&hub->users, id);
    if (u || !create)
        return u;
    u = sb_calloc(1, sizeof(*u));
    u->id = sb_strdup(id);
    u->hub = hub;
    sb_list_init(&u->clients);
    sb_dict_init(&u->groups);
    sb_dict_set(&hub->users, id, strlen(id), u);
    return u;
}

static void user_maybe_free(sb_user *u) {
    if (u->count || sb_dict_count(&u->groups))
        return;
    sb_dict_del(&u->hub->users, u->id, strlen(u->id));
    user_free(u);
}

static sb_group *group_get(sb_hub *hub, const char *name, int create) {
    sb_group *g = sb_dict_gets(&hub->groups, name);
    if (g || !create)
        return g;
    g = sb_calloc(1, sizeof(*g));
    g->name = sb_strdup(name);
    g->hub = hub;
    sb_list_init(&g->members);
    sb_dict_set(&hub->groups, name, strlen(name), g);
    return g;
}

static void member_remove(sb_member *m) {
    sb_group *g = m->group;
    sb_list_remove(&m->group_link);
    sb_list_remove(&m->client_link);
    sb_free(m);
    if (--g->count == 0) {
        sb_dict_del(&g->hub->groups, g->name, strlen(g->name));
        sb_free(g->name);
        sb_free(g);
    }
}

static sb_member *member_find(sb_client *c, const char *group) {
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &c->members) {
        sb_member *m = sb_container_of(pos, sb_member, client_link);
        if (strcmp(m->group->name, group) == 0)
            return m;
    }
    return NULL;
}

static void member_add(sb_client *c, const char *group) {
    if (member_find(c, group))
        return;
    sb_group *g = group_get(c->hub, group, 1);
    sb_member *m = sb_malloc(sizeof(*m));
    m->group = g;
    m->client = c;
    sb_list_insert_tail(&g->members, &m->group_link);
    sb_list_insert_tail(&c->members, &m->client_link);
    g->count++;
}

/* ---- clients -------------------------------------------------------------- */

static void random_id(char out[SB_ID_LEN + 1]) {
    unsigned char raw[16];
    _Static_assert(SB_BASE64URL_LEN(sizeof raw) == SB_ID_LEN, "an id is 16 random bytes in base64url");
    sb_random_bytes(raw, sizeof raw);
    sb_base64url_encode_to(raw, sizeof raw, out);
    out[SB_ID_LEN] = '\0';
}

/*
 * Shared claim sets.  Clients whose claims are equal (the same user's connections, or - serverless,
 * where only the claims an upstream call carries are kept - every client of an anonymous or
 * claim-less app) hold one json object, counted here under its canonical text.
 */
typedef struct shared_claims {
    json_t *claims;
    size_t holders;
} shared_claims;

static char *claims_key(json_t *claims) { return json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY); }

/* Takes ownership of claims; returns the shared equal set, held once more. */
static json_t *claims_share(sb_router *r, json_t *claims) {
    if (!claims)
        return NULL;
    char *key = claims_key(claims);
    if (!key)
        abort(); /* jansson fails only on allocation: the out-of-memory policy (util/alloc.h) */
    shared_claims *sc = sb_dict_gets(&r->claims, key);
    if (sc) {
        json_decref(claims);
    } else {
        sc = sb_malloc(sizeof(*sc));
        sc->claims = claims;
        sc->holders = 0;
        sb_dict_set(&r->claims, key, strlen(key), sc);
    }
    free(key);
    sc->holders++;
    return sc->claims;
}

static void claims_release(sb_router *r, json_t *claims) {
    if (!claims)
        return;
    char *key = claims_key(claims);
    if (!key)
        abort();
    shared_claims *sc = sb_dict_gets(&r->claims, key);
    if (sc && --sc->holders == 0) {
        sb_dict_del(&r->claims, key, strlen(key));
        json_decref(sc->claims);
        sb_free(sc);
    }
    free(key);
}

sb_client *sb_client_new(sb_router *r, sb_hub *hub, const char *user_id, json_t *claims, int negotiate_version) {
    sb_client *c = sb_calloc(1, sizeof(*c));
    random_id(c->id);
    if (negotiate_version >= 1)
        random_id(c->token);
    else
        memcpy(c->token, c->id, sizeof c->token);
    c->hub = hub;
    sb_client_set_user_id(c, user_id);
    c->claims = claims_share(r, claims);
    c->state = SB_CLIENT_NEGOTIATED;
    sb_list_init(&c->members);
    sb_list_init(&c->user_link);
    sb_list_init(&c->server_node);
    sb_dict_init(&c->pending_invocations);
    c->state_ms = c->last_recv_ms = c->last_send_ms = sb_stamp(sb_now_ms(r->srv));
    c->refs = 1; /* the router's */
    sb_ihash_insert(&r->tokens, &c->token_link);
    r->nclients++;
    return c;
}

void sb_client_set_user_id(sb_client *c, const char *user_id) {
    sb_intern *strings = &c->hub->router->strings;
    const char *next = user_id && *user_id ? sb_intern_gets(strings, user_id) : NULL;
    sb_intern_put(strings, c->user_id);
    c->user_id = next;
}

void sb_client_set_query(sb_client *c, const char *query, size_t len) {
    sb_intern *strings = &c->hub->router->strings;
    const char *next = sb_intern_get(strings, query, len);
    sb_intern_put(strings, c->query);
    c->query = next;
}

void sb_client_forget_request(sb_client *c) {
    claims_release(c->hub->router, c->claims);
    c->claims = NULL;
    if (c->headers)
        json_decref(c->headers);
    c->headers = NULL;
    sb_intern_put(&c->hub->router->strings, c->query);
    c->query = NULL;
}

sb_client *sb_router_find_token(sb_router *r, const char *token) {
    sb_ihash_node *n = sb_ihash_find(&r->tokens, token, strlen(token));
    return n ? sb_container_of(n, sb_client, token_link) : NULL;
}

sb_client *sb_hub_find_client(sb_hub *hub, const char *connection_id) {
    return sb_dict_gets(&hub->clients, connection_id);
}

void sb_client_activate(sb_client *c) {
    sb_hub *hub = c->hub;
    sb_dict_set_ref(&hub->clients, c->id, SB_ID_LEN, c); /* the client outlives its entry (sb_client_unlink) */
    if (!c->user_id)
        return;
    sb_user *u = user_get(hub, c->user_id, 1);
    c->user = u;
    sb_list_insert_tail(&u->clients, &c->user_link);
    u->count++;
    /* inherit the user's remembered group memberships that have not expired */
    uint64_t now = sb_now_ms(hub->router->srv);
    sb_dict_iter it;
    sb_dict_iter_init(&it, &u->groups);
    for (sb_dict_entry *e; (e = sb_dict_next(&it));) {
        sb_user_group *ug = e->value;
        if (ug->expires_ms && ug->expires_ms <= now) {
            sb_dict_del(&u->groups, e->key, e->klen);
            sb_free(ug);
            continue;
        }
        member_add(c, e->key);
    }
}

void sb_client_unlink(sb_client *c) {
    if (c->state == SB_CLIENT_CLOSED)
        return;
    sb_router *r = c->hub->router;
    /* A long-polling client with undelivered output (its Close message) stays findable by token
     * until its next poll collects it, or the disconnect timeout passes (sb_client_forget). */
    int linger = c->transport == SB_TRANSPORT_LONGPOLLING && c->lp->queue.count && !c->conn;
    if (!linger)
        sb_ihash_remove(&r->tokens, &c->token_link);
    if (sb_dict_get(&c->hub->clients, c->id, SB_ID_LEN) == c)
        sb_dict_del(&c->hub->clients, c->id, SB_ID_LEN);
    while (!sb_list_empty(&c->members))
        member_remove(sb_container_of(c->members.next, sb_member, client_link));
    if (c->user) {
        sb_list_remove(&c->user_link);
        c->user->count--;
        user_maybe_free(c->user);
        c->user = NULL;
    }
    c->state = SB_CLIENT_CLOSED;
    r->nclients--;
    if (linger) {
        c->lingering = 1;
        return;
    }
    sb_client_unref(c);
}

void sb_client_forget(sb_client *c) {
    if (!c->lingering)
        return;
    c->lingering = 0;
    sb_ihash_remove(&c->hub->router->tokens, &c->token_link);
    sb_client_unref(c);
}

void sb_client_unref(sb_client *c) {
    if (--c->refs > 0)
        return;
    if (c->lp) {
        sb_outq_clear(&c->lp->queue);
        sb_free(c->lp);
    }
    if (c->in) {
        sb_buf_free(c->in);
        sb_free(c->in);
    }
    sb_client_forget_request(c);
    sb_client_set_user_id(c, NULL);
    sb_dict_iter it;
    sb_dict_iter_init(&it, &c->pending_invocations);
    for (sb_dict_entry *e; (e = sb_dict_next(&it));)
        sb_free(e->value);
    sb_dict_free(&c->pending_invocations);
    sb_free(c);
}

/* ---- fan-out -------------------------------------------------------------- */

typedef struct fanout {
    sb_router *r;
    uint64_t epoch;
    sb_msg *m;
    size_t sent;
    sb_client *slow[16]; /* closed after the walk; more than this in one send close on the next */
    size_t nslow;
} fanout;

static void fanout_begin(fanout *f, sb_hub *hub, sb_msg *m, const sb_exclude *ex) {
    f->r = hub->router;
    f->epoch = ++f->r->epoch;
    f->m = m;
    f->sent = 0;
    f->nslow = 0;
    if (ex)
        for (size_t i = 0; i < ex->n; i++) {
            sb_client *c = sb_hub_find_client(hub, ex->ids[i]);
            if (c)
                c->mark = f->epoch;
        }
}

static void fanout_one(fanout *f, sb_client *c) {
    if (c->mark == f->epoch || c->state != SB_CLIENT_CONNECTED)
        return;
    c->mark = f->epoch;
    int rc = sb_client_deliver(c, f->m);
    if (rc == SB_OK) {
        f->sent++;
    } else if (rc == SB_ENOSPC && f->nslow < sizeof f->slow / sizeof f->slow[0]) {
        sb_client_ref(c);
        f->slow[f->nslow++] = c;
    }
}

static size_t fanout_end(fanout *f) {
    for (size_t i = 0; i < f->nslow; i++) {
        sb_client_close(f->slow[i], SB_CLOSE_SLOW_CLIENT, "Connection closed because it is too slow to receive messages.", 1);
        sb_client_unref(f->slow[i]);
    }
    return f->sent;
}

size_t sb_router_broadcast(sb_hub *hub, sb_msg *m, const sb_exclude *ex) {
    fanout f;
    fanout_begin(&f, hub, m, ex);
    sb_dict_iter it;
    sb_dict_iter_init(&it, &hub->clients);
    for (sb_dict_entry *e; (e = sb_dict_next(&it));)
        fanout_one(&f, e->value);
    return fanout_end(&f);
}

static void fan_user(fanout *f, sb_hub *hub, const char *user_id) {
    sb_user *u = user_get(hub, user_id, 0);
    if (!u)
        return;
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &u->clients) fanout_one(f, sb_container_of(pos, sb_client, user_link));
}

size_t sb_router_send_user(sb_hub *hub, const char *user_id, sb_msg *m) {
    return sb_router_send_users(hub, &user_id, 1, m);
}

size_t sb_router_send_users(sb_hub *hub, const char *const *user_ids, size_t n, sb_msg *m) {
    fanout f;
    fanout_begin(&f, hub, m, NULL);
    for (size_t i = 0; i < n; i++)
        fan_user(&f, hub, user_ids[i]);
    return fanout_end(&f);
}

size_t sb_router_send_connection(sb_hub *hub, const char *connection_id, sb_msg *m) {
    return sb_router_send_connections(hub, &connection_id, 1, m);
}

size_t sb_router_send_connections(sb_hub *hub, const char *const *ids, size_t n, sb_msg *m) {
    fanout f;
    fanout_begin(&f, hub, m, NULL);
    for (size_t i = 0; i < n; i++) {
        sb_client *c = sb_hub_find_client(hub, ids[i]);
        if (c)
            fanout_one(&f, c);
    }
    return fanout_end(&f);
}

static void fan_group(fanout *f, sb_hub *hub, const char *group) {
    sb_group *g = group_get(hub, group, 0);
    if (!g)
        return;
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &g->members) fanout_one(f, sb_container_of(pos, sb_member, group_link)->client);
}

size_t sb_router_send_group(sb_hub *hub, const char *group, sb_msg *m, const sb_exclude *ex) {
    fanout f;
    fanout_begin(&f, hub, m, ex);
    fan_group(&f, hub, group);
    return fanout_end(&f);
}

size_t sb_router_send_groups(sb_hub *hub, const char *const *groups, size_t n, sb_msg *m) {
    fanout f;
    fanout_begin(&f, hub, m, NULL);
    for (size_t i = 0; i < n; i++)
        fan_group(&f, hub, groups[i]);
    return fanout_end(&f);
}

/* ---- membership ----------------------------------------------------------- */

int sb_router_group_add(sb_hub *hub, const char *group, const char *connection_id) {
    sb_client *c = sb_hub_find_client(hub, connection_id);
    if (!c)
        return SB_ENOENT;
    member_add(c, group);
    return SB_OK;
}

int sb_router_group_remove(sb_hub *hub, const char *group, const char *connection_id) {
    sb_client *c = sb_hub_find_client(hub, connection_id);
    if (!c)
        return SB_ENOENT;
    sb_member *m = member_find(c, group);
    if (m)
        member_remove(m);
    return SB_OK;
}

int sb_router_group_remove_all(sb_hub *hub, const char *connection_id) {
    sb_client *c = sb_hub_find_client(hub, connection_id);
    if (!c)
        return SB_ENOENT;
    while (!sb_list_empty(&c->members))
        member_remove(sb_container_of(c->members.next, sb_member, client_link));
    return SB_OK;
}

void sb_router_user_group_add(sb_hub *hub, const char *user_id, const char *group, long ttl_seconds) {
    sb_user *u = user_get(hub, user_id, ttl_seconds != 0);
    if (!u)
        return;
    if (ttl_seconds != 0) {
        sb_user_group *ug = sb_dict_gets(&u->groups, group);
        if (!ug) {
            ug = sb_calloc(1, sizeof(*ug));
            sb_dict_set(&u->groups, group, strlen(group), ug);
        }
        ug->expires_ms = ttl_seconds > 0 ? sb_now_ms(hub->router->srv) + (uint64_t)ttl_seconds * 1000 : 0;
    }
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &u->clients) member_add(sb_container_of(pos, sb_client, user_link), group);
}

void sb_router_user_group_remove(sb_hub *hub, const char *user_id, const char *group) {
    sb_user *u = user_get(hub, user_id, 0);
    if (!u)
        return;
    sb_free(sb_dict_del(&u->groups, group, strlen(group)));
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &u->clients) {
        sb_member *m = member_find(sb_container_of(pos, sb_client, user_link), group);
        if (m)
            member_remove(m);
    }
    user_maybe_free(u);
}

void sb_router_user_group_remove_all(sb_hub *hub, const char *user_id) {
    sb_user *u = user_get(hub, user_id, 0);
    if (!u)
        return;
    sb_dict_iter it;
    sb_dict_iter_init(&it, &u->groups);
    for (sb_dict_entry *e; (e = sb_dict_next(&it));)
        sb_free(e->value);
    sb_dict_free(&u->groups);
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &u->clients) {
        sb_client *c = sb_container_of(pos, sb_client, user_link);
        while (!sb_list_empty(&c->members))
            member_remove(sb_container_of(c->members.next, sb_member, client_link));
    }
    user_maybe_free(u);
}

/* ---- existence ------------------------------------------------------------ */

int sb_router_connection_exists(sb_hub *hub, const char *connection_id) {
    return sb_hub_find_client(hub, connection_id) != NULL;
}

int sb_router_user_exists(sb_hub *hub, const char *user_id) {
    sb_user *u = user_get(hub, user_id, 0);
    return u && u->count > 0;
}

int sb_router_group_exists(sb_hub *hub, const char *group) { return group_get(hub, group, 0) != NULL; }

int sb_router_user_in_group(sb_hub *hub, const char *user_id, const char *group) {
    sb_user *u = user_get(hub, user_id, 0);
    if (!u)
        return 0;
    sb_user_group *ug = sb_dict_gets(&u->groups, group);
    if (ug && (!ug->expires_ms || ug->expires_ms > sb_now_ms(hub->router->srv)))
        return 1;
    sb_list *pos, *tmp;
    sb_list_foreach_safe(pos, tmp, &u->clients) {
        if (member_find(sb_container_of(pos, sb_client, user_link), group))
            return 1;
    }
    return 0;
}

/* ---- closing -------------------------------------------------------------- */

int sb_router_close_connection(sb_hub *hub, const char *connection_id, const char *reason) {
    sb_client *c = sb_hub_find_client(hub, connection_id);
    if (!c)
        return SB_ENOENT;
    sb_client_close(c, SB_CLOSE_BY_APP, reason && *reason ? reason : NULL, 0);
    return SB_OK;
}

/* Collect first, close after: closing unlinks from the very lists being walked. */
typedef struct closeset {
    sb_client **v;
    size_t n, cap;
} closeset;

static void closeset_add(closeset *s, sb_client *c, uint64_t epoch) {
    if (c->mark == epoch)
        return;
    c->mark = epoch;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = sb_realloc(s->v, s->cap * sizeof(*s->v));
    }
    sb_client_ref(c);
    s->v[s->n++] = c;
}

static size_t closeset_run(closeset *s, const char *reason) {
    for (size_t i = 0; i < s->n; i++) {
        sb_client_close(s->v[i], SB_CLOSE_BY_APP, reason && *reason ? reason : NULL, 0);
        sb_client_unref(s->v[i]);
    }
    size_t n = s->n;
    sb_free(s->v);
    return n;
}

static uint64_t exclude_mark(sb_hub *hub, const sb_exclude *ex) {
    uint64_t epoch = ++hub->router->epoch;
    if (ex)
        for (size_t i = 0; i < ex->n; i++) {
            sb_client *c = sb_hub_find_client(hub, ex->ids[i]);
            if (c)
                c->mark = epoch;
        }
    return epoch;
}

size_t sb_router_close_hub(sb_hub *hub, const char *reason, const sb_exclude *ex) {
    closeset s = {0};
    uint64_t epoch = exclude_mark(hub, ex);
    sb_dict_iter it;
    sb_dict_iter_init(&it, &hub->clients);
    for (sb_dict_entry *e; (e = sb_dict_next(&it));)
        closeset_add(&s, e->value, epoch);
    return closeset_run(&s, reason);
}

size_t sb_router_close_group(sb_hub *hub, const char *group, const char *reason, const sb_exclude *ex) {
    closeset s = {0};
    uint64_t epoch = exclude_mark(hub, ex);
    sb_group *g = group_get(hub, group, 0);
    if (g) {
        sb_list *pos, *tmp;
        sb_list_foreach_safe(pos, tmp, &g->members) {
            closeset_add(&s, sb_container_of(pos, sb_member, group_link)->client, epoch);
        }
    }
    return closeset_run(&s, reason);
}

size_t sb_router_close_user(sb_hub *hub, const char *user_id, const char *reason, const sb_exclude *ex) {
    closeset s = {0};
    uint64_t epoch = exclude_mark(hub, ex);
    sb_user *u = user_get(hub, user_id, 0);
    if (u) {
        sb_list *pos, *tmp;
        sb_list_foreach_safe(pos, tmp, &u->clients) {
            closeset_add(&s, sb_container_of(pos, sb_client, user_link), epoch);
        }
    }
    return closeset_run(&s, reason);
}
