/*
 * auth.c - request authentication and access-key storage; see auth.h.
 * Token parsing and signature checks are in jwt.c; this file decides where
 * the token comes from, which keys and audiences apply, and what the client
 * is told.
 */
#include "auth/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/jwt.h"
#include "server.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/utf8.h"

const char *sb_auth_result_reason(const sb_auth_result *res) {
    return res->message.len && sb_utf8_valid(res->message.data, res->message.len) ? res->message.data
                                                                                  : "Authentication failed.";
}

int sb_auth_arm_request(sb_server *srv, const sb_http_request *req, sb_auth_result *res) {
    sb_buf collapsed;
    sb_buf_init(&collapsed);
    sb_url_path_collapse(req->path, &collapsed);
    char *aud_raw = sb_asprintf("%s%.*s", srv->endpoint, (int)req->path.len, req->path.base);
    char *aud_collapsed = sb_asprintf("%s%s", srv->endpoint, collapsed.data ? collapsed.data : "");
    const char *const auds[] = {aud_raw, aud_collapsed};
    int rc = sb_auth_request(srv, req, 0, auds, strcmp(aud_raw, aud_collapsed) ? 2 : 1, 1, res);
    sb_free(aud_raw);
    sb_free(aud_collapsed);
    sb_buf_free(&collapsed);
    return rc;
}

void sb_auth_result_free(sb_auth_result *res) {
    if (res->claims)
        json_decref(res->claims);
    res->claims = NULL;
    sb_buf_free(&res->message);
}

static void fail(sb_auth_result *res, int status, const char *text) {
    res->status = status;
    sb_buf_reset(&res->message);
    sb_buf_appends(&res->message, text);
}

int sb_auth_request(sb_server *srv, const sb_http_request *req, int allow_query_token,
                    const char *const *valid_auds, size_t nvalid, int ignore_query, sb_auth_result *res) {
    res->claims = NULL;
    res->status = 0;
    sb_buf_init(&res->message);

    sb_buf qtok;
    sb_buf_init(&qtok);
    const char *token = NULL;
    size_t token_len = 0;
    sb_slice h = sb_http_header_get(req, "Authorization");
    if (h.base && h.len > 7 && strncasecmp(h.base, "Bearer ", 7) == 0) {
        token = h.base + 7;
        token_len = h.len - 7;
        while (token_len && *token == ' ')
            token++, token_len--;
    } else if (allow_query_token && sb_http_query_get(req->query, "access_token", 0, &qtok) > 0) {
        token = qtok.data;
        token_len = qtok.len;
    }
    if (!token || !token_len) {
        sb_buf_free(&qtok);
        fail(res, 401, "No access token was provided.");
        return SB_EAUTH;
    }

    const char *keys[2];
    for (size_t i = 0; i < srv->naccess_keys; i++)
        keys[i] = srv->access_keys[i];
    static const char *const algs[] = {"HS256", "HS384", "HS512"};
    sb_jwt_verify_opts opts = {
        .keys = keys,
        .nkeys = srv->naccess_keys,
        .algs = algs,
        .nalgs = 3,
        .now = time(NULL),
        .skew_seconds = (int)srv->cfg.token_skew_seconds,
        .max_token_len = (size_t)srv->cfg.max_token_bytes,
    };
    const char *reason = NULL;
    json_t *claims = NULL;
    int rc = sb_jwt_verify(token, token_len, &opts, &claims, &reason);
    sb_buf_free(&qtok);
    if (rc == SB_E2BIG) {
        fail(res, 413, reason ? reason : "The token is too large.");
        return SB_E2BIG;
    }
    if (rc != SB_OK) {
        fail(res, 401, reason ? reason : "The token is invalid.");
        return SB_EAUTH;
    }
    if (sb_jwt_check_audience(claims, valid_auds, nvalid, ignore_query, &res->message) != SB_OK) {
        json_decref(claims);
        res->status = 401;
        return SB_EAUTH;
    }
    res->claims = claims;
    return SB_OK;
}

char *sb_auth_generate_key(void) {
    unsigned char raw[32];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        abort(); /* the kernel's CSPRNG is not optional */
    sb_buf b;
    sb_buf_init(&b);
    sb_base64url_encode(raw, sizeof raw, &b);
    return sb_buf_steal(&b, NULL);
}

int sb_auth_load_keys(sb_server *srv) {
    if (srv->cfg.access_key && srv->cfg.access_key[0]) {
        srv->access_keys[0] = sb_strdup(srv->cfg.access_key);
        srv->naccess_keys = 1;
        return SB_OK;
    }
    char *path = sb_asprintf("%s/accesskey", srv->cfg.data_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        char line[512] = "";
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
        line[strcspn(line, "\r\n")] = '\0';
        if (!line[0]) {
            fprintf(stderr, "switchboard: %s is empty\n", path);
            sb_free(path);
            return SB_EINVAL;
        }
        srv->access_keys[0] = sb_strdup(line);
    } else {
        char *key = sb_auth_generate_key();
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
        if (fd < 0) {
            int e = errno;
            fprintf(stderr, "switchboard: cannot create %s: %s\n", path, strerror(e));
            sb_free(key);
            sb_free(path);
            return -e;
        }
        size_t n = strlen(key);
        if (write(fd, key, n) != (ssize_t)n || write(fd, "\n", 1) != 1) {
            int e = errno;
            close(fd);
            fprintf(stderr, "switchboard: cannot write %s: %s\n", path, strerror(e));
            sb_free(key);
            sb_free(path);
            return -e;
        }
        close(fd);
        srv->access_keys[0] = key;
    }
    srv->naccess_keys = 1;
    sb_free(path);
    return SB_OK;
}
