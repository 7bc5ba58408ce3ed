/*
 * control.c - the set-up side of a run, where simplicity beats speed:
 * blocking HTTP/1.1 calls on one keep-alive connection (app-server negotiate,
 * REST group joins, the diagnostic setting), tokens, and counting the log
 * records the service archived.
 *
 * Every call is bounded: a 10 s socket timeout on connect, send and receive.
 * Nothing here runs while a measurement is being taken.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "auth/jwt.h"
#include "loadgen.h"
#include "util/alloc.h"
#include "util/error.h"

#define CALL_TIMEOUT_S 10

char *sb_lg_token(const char *access_key, const char *aud, const char *user) {
    json_t *claims = json_object();
    time_t now = time(NULL);
    json_object_set_new(claims, "aud", json_string(aud));
    json_object_set_new(claims, "iat", json_integer(now));
    json_object_set_new(claims, "nbf", json_integer(now));
    json_object_set_new(claims, "exp", json_integer(now + 7200));
    if (user)
        json_object_set_new(claims, "nameid", json_string(user));
    char *tok = NULL;
    if (sb_jwt_sign("HS256", access_key, strlen(access_key), claims, &tok) != SB_OK)
        tok = sb_strdup("");
    json_decref(claims);
    return tok;
}

void sb_lg_http_client_init(sb_lg_http_client *h, const char *host, int port) {
    memset(h, 0, sizeof *h);
    snprintf(h->host, sizeof h->host, "%s", host);
    h->port = port;
    h->fd = -1;
    sb_buf_init(&h->in);
}

void sb_lg_http_client_free(sb_lg_http_client *h) {
    if (h->fd >= 0)
        close(h->fd);
    h->fd = -1;
    sb_buf_free(&h->in);
}

static int blocking_connect(sb_lg_http_client *h) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)h->port)};
    if (inet_pton(AF_INET, h->host, &sa.sin_addr) != 1)
        return SB_EINVAL;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct timeval tv = {.tv_sec = CALL_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    h->fd = fd;
    sb_buf_reset(&h->in);
    return SB_OK;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? -errno : SB_EIO;
        p += w;
        n -= (size_t)w;
    }
    return SB_OK;
}

/* One attempt on the current connection: SB_ECLOSED if it turned out to be closed before any answer. */
static int attempt(sb_lg_http_client *h, const sb_buf *req, sb_buf *resp_body) {
    int rc = send_all(h->fd, req->data, req->len);
    if (rc != SB_OK)
        return SB_ECLOSED;
    for (;;) {
        sb_lg_http_resp r;
        size_t total;
        rc = sb_lg_http_parse_head(h->in.data ? h->in.data : "", h->in.len, &r);
        if (rc == SB_OK)
            rc = sb_lg_http_complete(h->in.data, h->in.len, &r, &total);
        if (rc == SB_OK) {
            if (resp_body) {
                sb_buf_reset(resp_body);
                sb_buf_append(resp_body, h->in.data + r.head_len, total - r.head_len);
            }
            sb_buf_consume(&h->in, total);
            if (r.close) {
                close(h->fd);
                h->fd = -1;
            }
            return r.status;
        }
        if (rc != SB_EAGAIN)
            return rc;
        char tmp[16384];
        ssize_t n = recv(h->fd, tmp, sizeof tmp, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return h->in.len ? (n < 0 ? -errno : SB_EIO) : SB_ECLOSED;
        sb_buf_append(&h->in, tmp, (size_t)n);
    }
}

int sb_lg_http_call(sb_lg_http_client *h, const char *method, const char *target, const char *headers,
                    const char *body, size_t body_len, sb_buf *resp_body) {
    sb_buf req;
    sb_buf_init(&req);
    sb_buf_appendf(&req, "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: %zu\r\n%s\r\n", method, target,
                   h->host, h->port, body_len, headers ? headers : "");
    if (body_len)
        sb_buf_append(&req, body, body_len);
    int rc = SB_ECLOSED;
    /* a keep-alive connection the server has since closed fails before any answer: retry once */
    for (int tries = 0; tries < 2 && rc == SB_ECLOSED; tries++) {
        if (h->fd < 0 && (rc = blocking_connect(h)) != SB_OK)
            break;
        rc = attempt(h, &req, resp_body);
        if (rc < 0) {
            close(h->fd);
            h->fd = -1;
        }
    }
    sb_buf_free(&req);
    return rc;
}

int sb_lg_create_diag_setting(sb_lg_ctx *c) {
    static const char path[] =
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/default/providers/"
        "Microsoft.SignalRService/SignalR/switchboard/providers/Microsoft.Insights/diagnosticSettings/bench";
    static const char body[] =
        "{\"properties\":{\"storageAccountId\":\"/subscriptions/00000000-0000-0000-0000-000000000000/"
        "resourceGroups/default/providers/Microsoft.Storage/storageAccounts/local\","
        "\"logs\":[{\"categoryGroup\":\"allLogs\",\"enabled\":true}]}}";
    char *aud = sb_asprintf("%s%s", c->o.url, path);
    char *tok = sb_lg_token(c->o.access_key, aud, NULL);
    char *headers = sb_asprintf("Authorization: Bearer %s\r\nContent-Type: application/json\r\n", tok);
    char *target = sb_asprintf("%s?api-version=2021-05-01-preview", path);
    sb_lg_http_client h;
    sb_lg_http_client_init(&h, c->o.host, c->o.port);
    sb_buf resp;
    sb_buf_init(&resp);
    int st = sb_lg_http_call(&h, "PUT", target, headers, body, sizeof body - 1, &resp);
    if (st != 200 && st != 201)
        fprintf(stderr, "loadgen: diagnostic setting PUT answered %d %s\n", st,
                st < 0 ? sb_strerror(st) : resp.data);
    sb_buf_free(&resp);
    sb_lg_http_client_free(&h);
    sb_free(aud);
    sb_free(tok);
    sb_free(headers);
    sb_free(target);
    return st == 200 || st == 201 ? SB_OK : SB_EIO;
}

/* One archive file: MessageSentToClient records, and the totals of the service's LogRecordsDropped
 * warnings ("<N> log records were dropped: <why>"). */
static int count_in_file(const char *path, sb_lg_log_count *out) {
    FILE *f = fopen(path, "r");
    if (!f)
        return -errno;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        if (strstr(line, "\"MessageSentToClient\"")) {
            out->sent_to_client++;
        } else if (strstr(line, "\"LogRecordsDropped\"")) {
            const char *m = strstr(line, "\"message\":\"");
            out->dropped += m ? strtoll(m + 11, NULL, 10) : 0;
        }
    }
    free(line);
    fclose(f);
    return SB_OK;
}

/* Depth-first walk, bounded in depth (the archive layout is 14 levels deep). */
static int count_tree(const char *dir, int depth, sb_lg_log_count *out) {
    if (depth > 32)
        return SB_OK;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char *p = sb_asprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) == 0) {
            if (S_ISDIR(st.st_mode))
                count_tree(p, depth + 1, out);
            else if (S_ISREG(st.st_mode))
                count_in_file(p, out);
        }
        sb_free(p);
    }
    closedir(d);
    return SB_OK;
}

int sb_lg_count_log_records(const char *dir, sb_lg_log_count *out) {
    memset(out, 0, sizeof *out);
    return count_tree(dir, 0, out);
}
