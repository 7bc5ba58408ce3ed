/*
 * connstr.c - the Azure SignalR connection string, parsed as the SDK's
 * ConnectionStringParser does it, and the endpoint URLs in it.
 *
 * Rules kept: parts separated by ';', each split at its first '=', keys
 * case-insensitive, whitespace around keys and values trimmed, empty parts
 * ignored (the usual trailing ';'), duplicate keys an error, Endpoint and
 * AccessKey required, Version 1.x when present, Port 1-65535 replacing the
 * Endpoint's port, a trailing '/' on an endpoint trimmed.
 *
 * Not here: Entra ID (AuthType=aad ...) and https - this app server only talks
 * to a service on the same machine over plain http.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "appserver.h"
#include "util/alloc.h"
#include "util/error.h"

static char *trimmed(const char *s, size_t n) {
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    return sb_strndup(s, n);
}

void sb_app_endpoint_free(sb_app_endpoint *e) {
    sb_free(e->url);
    sb_free(e->host);
    sb_free(e->path);
    memset(e, 0, sizeof *e);
}

int sb_app_endpoint_parse(const char *url, int port_override, sb_app_endpoint *out, const char **err) {
    memset(out, 0, sizeof *out);
    if (strncasecmp(url, "https://", 8) == 0) {
        *err = "https endpoints are not supported by this app server; use http";
        return SB_EINVAL;
    }
    if (strncasecmp(url, "http://", 7) != 0) {
        *err = "the endpoint must be an http:// URL";
        return SB_EINVAL;
    }
    const char *h = url + 7, *host_end, *rest;
    if (*h == '[') {
        host_end = strchr(h, ']');
        if (!host_end) {
            *err = "the endpoint has an unterminated IPv6 address";
            return SB_EINVAL;
        }
        out->host = sb_strndup(h + 1, (size_t)(host_end - h - 1));
        rest = host_end + 1;
    } else {
        host_end = h + strcspn(h, ":/?#");
        out->host = sb_strndup(h, (size_t)(host_end - h));
        rest = host_end;
    }
    int port = 80, explicit_port = 0;
    if (*rest == ':') {
        char *end;
        long v = strtol(rest + 1, &end, 10);
        if (end == rest + 1 || v < 1 || v > 65535 || (*end && *end != '/')) {
            sb_app_endpoint_free(out);
            *err = "the endpoint has an invalid port";
            return SB_EINVAL;
        }
        port = (int)v;
        explicit_port = 1;
        rest = end;
    }
    if (!*out->host || (*rest && *rest != '/')) {
        sb_app_endpoint_free(out);
        *err = "the endpoint must look like http://host[:port][/path]";
        return SB_EINVAL;
    }
    if (port_override > 0) {
        port = port_override;
        explicit_port = 1;
    }
    size_t plen = strlen(rest);
    while (plen && rest[plen - 1] == '/')
        plen--;
    out->path = sb_strndup(rest, plen);
    out->port = port;
    int v6 = strchr(out->host, ':') != NULL;
    char portpart[16] = "";
    if (explicit_port)
        snprintf(portpart, sizeof portpart, ":%d", port);
    out->url = sb_asprintf("http://%s%s%s%s%s", v6 ? "[" : "", out->host, v6 ? "]" : "", portpart, out->path);
    return SB_OK;
}

enum { K_ENDPOINT, K_ACCESS_KEY, K_VERSION, K_PORT, K_CLIENT_ENDPOINT, K_SERVER_ENDPOINT, K_COUNT };
static const char *const key_names[K_COUNT] = {"endpoint", "accesskey",      "version",
                                               "port",     "clientendpoint", "serverendpoint"};

static int version_ok(const char *v) {
    /* ^1\.\d+(?:[\w-.]+)?$ */
    if (v[0] != '1' || v[1] != '.' || !isdigit((unsigned char)v[2]))
        return 0;
    for (const char *p = v + 2; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
            return 0;
    return 1;
}

void sb_app_connstr_free(sb_app_connstr *cs) {
    sb_app_endpoint_free(&cs->server);
    sb_free(cs->client_url);
    sb_free(cs->access_key);
    memset(cs, 0, sizeof *cs);
}

int sb_app_connstr_parse(const char *s, sb_app_connstr *out, const char **err) {
    memset(out, 0, sizeof *out);
    char *val[K_COUNT] = {0};
    int rc = SB_EINVAL;
    size_t nparts = 0;
    for (const char *p = s; *p;) {
        const char *semi = strchr(p, ';');
        size_t n = semi ? (size_t)(semi - p) : strlen(p);
        const char *eq = memchr(p, '=', n);
        char *key = trimmed(p, eq ? (size_t)(eq - p) : n);
        if (!eq && !*key) {
            sb_free(key);
        } else if (!eq) {
            sb_free(key);
            *err = "connection string part without '='";
            goto out;
        } else {
            nparts++;
            int k = 0;
            while (k < K_COUNT && strcasecmp(key, key_names[k]) != 0)
                k++;
            sb_free(key);
            if (k < K_COUNT) {
                if (val[k]) {
                    *err = "duplicate key in the connection string";
                    goto out;
                }
                val[k] = trimmed(eq + 1, n - (size_t)(eq + 1 - p));
            } /* other keys (AuthType, ClientId, ...) are not used here */
        }
        p += n;
        if (*p == ';')
            p++;
    }
    if (nparts < 2 || !val[K_ENDPOINT] || !*val[K_ENDPOINT]) {
        *err = "the connection string needs Endpoint=...";
        goto out;
    }
    if (!val[K_ACCESS_KEY] || !*val[K_ACCESS_KEY]) {
        *err = "the connection string needs AccessKey=...";
        goto out;
    }
    if (val[K_VERSION] && !version_ok(val[K_VERSION])) {
        *err = "the connection string Version must be 1.x";
        goto out;
    }
    int port = 0;
    if (val[K_PORT]) {
        char *end;
        long v = strtol(val[K_PORT], &end, 10);
        if (end == val[K_PORT] || *end || v < 1 || v > 65535) {
            *err = "the connection string Port must be 1-65535";
            goto out;
        }
        port = (int)v;
    }
    sb_app_endpoint ep;
    if (sb_app_endpoint_parse(val[K_ENDPOINT], port, &ep, err) != SB_OK)
        goto out;
    if (val[K_SERVER_ENDPOINT]) {
        sb_app_endpoint_free(&ep);
        if (sb_app_endpoint_parse(val[K_SERVER_ENDPOINT], 0, &ep, err) != SB_OK)
            goto out;
    }
    out->server = ep;
    if (val[K_CLIENT_ENDPOINT]) {
        sb_app_endpoint cep;
        if (sb_app_endpoint_parse(val[K_CLIENT_ENDPOINT], 0, &cep, err) != SB_OK) {
            sb_app_connstr_free(out);
            goto out;
        }
        out->client_url = sb_strdup(cep.url);
        sb_app_endpoint_free(&cep);
    } else if (val[K_SERVER_ENDPOINT]) {
        sb_app_endpoint cep;
        if (sb_app_endpoint_parse(val[K_ENDPOINT], port, &cep, err) != SB_OK) {
            sb_app_connstr_free(out);
            goto out;
        }
        out->client_url = sb_strdup(cep.url);
        sb_app_endpoint_free(&cep);
    } else {
        out->client_url = sb_strdup(ep.url);
    }
    out->access_key = val[K_ACCESS_KEY];
    val[K_ACCESS_KEY] = NULL;
    rc = SB_OK;
out:
    for (int k = 0; k < K_COUNT; k++)
        sb_free(val[k]);
    return rc;
}
