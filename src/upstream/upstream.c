/*
 * upstream.c - upstream settings, matching, URL expansion and header values;
 * see upstream.h for the rules.  Pure functions over values, plus the load and
 * durable save of the persisted document.
 *
 * Not here: sending anything (http_multi.c), deciding which client event
 * becomes which call and what the answer does to the client (dispatch.c).
 */
#include "upstream/upstream.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/error.h"

#define MAX_DOCUMENT_BYTES (4u << 20)

static const char *const system_claims[] = {"aud", "exp", "iat",    "nbf", "iss",  "actort",
                                            "acr", "azp", "c_hash", "jti", "nonce"};

/* ---- settings values ------------------------------------------------------------------------- */

void sb_upstream_settings_init(sb_upstream_settings *s) {
    s->v = NULL;
    s->n = 0;
}

static void template_free(sb_upstream_template *t) {
    sb_free(t->url_template);
    sb_free(t->hub_pattern);
    sb_free(t->category_pattern);
    sb_free(t->event_pattern);
}

void sb_upstream_settings_free(sb_upstream_settings *s) {
    for (size_t i = 0; i < s->n; i++)
        template_free(&s->v[i]);
    sb_free(s->v);
    sb_upstream_settings_init(s);
}

void sb_upstream_settings_copy(sb_upstream_settings *dst, const sb_upstream_settings *src) {
    sb_upstream_settings_init(dst);
    if (!src->n)
        return;
    dst->v = sb_calloc(src->n, sizeof *dst->v);
    for (size_t i = 0; i < src->n; i++) {
        dst->v[i].url_template = sb_strdup(src->v[i].url_template);
        dst->v[i].hub_pattern = sb_strdup(src->v[i].hub_pattern);
        dst->v[i].category_pattern = sb_strdup(src->v[i].category_pattern);
        dst->v[i].event_pattern = sb_strdup(src->v[i].event_pattern);
    }
    dst->n = src->n;
}

int sb_upstream_url_template_valid(const char *url) {
    size_t n = strlen(url);
    if (n > SB_UPSTREAM_MAX_URL_BYTES)
        return 0;
    size_t skip = strncasecmp(url, "http://", 7) == 0 ? 7 : strncasecmp(url, "https://", 8) == 0 ? 8 : 0;
    if (!skip || !url[skip] || strchr("/?#", url[skip]))
        return 0;
    /* printable ASCII only: what libcurl takes as a URL without re-encoding */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7F)
            return 0;
    return 1;
}

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int sb_upstream_settings_single(sb_upstream_settings *s, const char *url, char *err, size_t errlen) {
    sb_upstream_settings_init(s);
    if (!url || !*url)
        return SB_OK;
    if (!sb_upstream_url_template_valid(url)) {
        set_err(err, errlen, "upstream_url_template must be an absolute http or https URL without spaces");
        return SB_EINVAL;
    }
    s->v = sb_calloc(1, sizeof *s->v);
    s->v[0] = (sb_upstream_template){sb_strdup(url), sb_strdup("*"), sb_strdup("*"), sb_strdup("*")};
    s->n = 1;
    return SB_OK;
}

/* ---- JSON ------------------------------------------------------------------------------------ */

/* Member of obj named name, ignoring case; NULL when absent. */
static json_t *member(json_t *obj, const char *name) {
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value) {
        if (strcasecmp(key, name) == 0)
            return value;
    }
    return NULL;
}

static int blank(const char *s) {
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

/* A pattern property: absent, null or blank means "*". */
static int parse_pattern(json_t *t, const char *name, size_t i, char **out, char *err, size_t errlen) {
    json_t *v = member(t, name);
    if (!v || json_is_null(v) || (json_is_string(v) && blank(json_string_value(v)))) {
        *out = sb_strdup("*");
        return SB_OK;
    }
    if (!json_is_string(v)) {
        set_err(err, errlen, "upstream.templates[%zu].%s must be a string.", i, name);
        return SB_EINVAL;
    }
    if (json_string_length(v) > SB_UPSTREAM_MAX_PATTERN_BYTES ||
        memchr(json_string_value(v), 0, json_string_length(v))) {
        set_err(err, errlen, "upstream.templates[%zu].%s must be at most %d bytes of text.", i, name,
                SB_UPSTREAM_MAX_PATTERN_BYTES);
        return SB_EINVAL;
    }
    *out = sb_strdup(json_string_value(v));
    return SB_OK;
}

static int parse_template(json_t *t, size_t i, sb_upstream_template *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!json_is_object(t)) {
        set_err(err, errlen, "upstream.templates[%zu] must be an object.", i);
        return SB_EINVAL;
    }
    json_t *url = member(t, "urlTemplate");
    if (!json_is_string(url) || !json_string_length(url)) {
        set_err(err, errlen, "upstream.templates[%zu].urlTemplate is required.", i);
        return SB_EINVAL;
    }
    if (memchr(json_string_value(url), 0, json_string_length(url)) ||
        !sb_upstream_url_template_valid(json_string_value(url))) {
        set_err(err, errlen,
                "upstream.templates[%zu].urlTemplate must be an absolute http or https URL without spaces, "
                "at most %d bytes.",
                i, SB_UPSTREAM_MAX_URL_BYTES);
        return SB_EINVAL;
    }
    json_t *auth = member(t, "auth");
    if (auth && !json_is_null(auth)) {
        json_t *type = json_is_object(auth) ? member(auth, "type") : NULL;
        if (!json_is_object(auth) || (type && !json_is_null(type) && !json_is_string(type))) {
            set_err(err, errlen, "upstream.templates[%zu].auth must be an object with a string 'type'.", i);
            return SB_EINVAL;
        }
        const char *name = json_is_string(type) ? json_string_value(type) : "None";
        if (strcasecmp(name, "None") != 0) {
            set_err(err, errlen,
                    "upstream.templates[%zu].auth.type '%.64s' is not supported: this service has no managed "
                    "identity; use 'None'.",
                    i, name);
            return SB_EINVAL;
        }
    }
    int rc = SB_OK;
    if ((rc = parse_pattern(t, "hubPattern", i, &out->hub_pattern, err, errlen)) != SB_OK ||
        (rc = parse_pattern(t, "categoryPattern", i, &out->category_pattern, err, errlen)) != SB_OK ||
        (rc = parse_pattern(t, "eventPattern", i, &out->event_pattern, err, errlen)) != SB_OK) {
        template_free(out);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->url_template = sb_strdup(json_string_value(url));
    return SB_OK;
}

int sb_upstream_settings_from_json(sb_upstream_settings *s, json_t *upstream, char *err, size_t errlen) {
    sb_upstream_settings_init(s);
    if (!json_is_object(upstream)) {
        set_err(err, errlen, "upstream must be an object.");
        return SB_EINVAL;
    }
    json_t *list = member(upstream, "templates");
    if (!list || json_is_null(list))
        return SB_OK;
    if (!json_is_array(list)) {
        set_err(err, errlen, "upstream.templates must be an array.");
        return SB_EINVAL;
    }
    size_t n = json_array_size(list);
    if (n > SB_UPSTREAM_MAX_TEMPLATES) {
        set_err(err, errlen, "upstream.templates has %zu items; at most %d are allowed.", n,
                SB_UPSTREAM_MAX_TEMPLATES);
        return SB_EINVAL;
    }
    if (!n)
        return SB_OK;
    s->v = sb_calloc(n, sizeof *s->v);
    for (size_t i = 0; i < n; i++) {
        if (parse_template(json_array_get(list, i), i, &s->v[i], err, errlen) != SB_OK) {
            sb_upstream_settings_free(s);
            return SB_EINVAL;
        }
        s->n = i + 1;
    }
    return SB_OK;
}

json_t *sb_upstream_settings_to_json(const sb_upstream_settings *s) {
    json_t *list = json_array();
    for (size_t i = 0; i < s->n; i++) {
        const sb_upstream_template *t = &s->v[i];
        json_array_append_new(list,
                              json_pack("{s:s, s:s, s:s, s:s, s:{s:s}}", "urlTemplate", t->url_template,
                                        "hubPattern", t->hub_pattern, "eventPattern", t->event_pattern,
                                        "categoryPattern", t->category_pattern, "auth", "type", "None"));
    }
    return json_pack("{s:o}", "templates", list);
}

int sb_upstream_settings_load(sb_upstream_settings *s, const char *path, char *err, size_t errlen) {
    sb_upstream_settings_init(s);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return SB_ENOENT;
        set_err(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    sb_buf text;
    sb_buf_init(&text);
    int rc = SB_OK;
    for (;;) {
        sb_buf_reserve(&text, 65536);
        ssize_t r = read(fd, text.data + text.len, text.cap - text.len - 1);
        if (r > 0) {
            text.len += (size_t)r;
            if (text.len > MAX_DOCUMENT_BYTES) {
                set_err(err, errlen, "%s: larger than %u bytes", path, MAX_DOCUMENT_BYTES);
                rc = SB_E2BIG;
                break;
            }
        } else if (r == 0) {
            break;
        } else if (errno != EINTR) {
            rc = -errno;
            set_err(err, errlen, "%s: %s", path, strerror(errno));
            break;
        }
    }
    close(fd);
    if (rc == SB_OK) {
        json_error_t jerr;
        json_t *doc = json_loadb(text.data ? text.data : "", text.len, 0, &jerr);
        if (!doc) {
            set_err(err, errlen, "%s: line %d: %s", path, jerr.line, jerr.text);
            rc = SB_EINVAL;
        } else {
            char why[512];
            rc = sb_upstream_settings_from_json(s, doc, why, sizeof why);
            if (rc != SB_OK)
                set_err(err, errlen, "%s: %s", path, why);
            json_decref(doc);
        }
    }
    sb_buf_free(&text);
    return rc;
}

int sb_upstream_settings_save_text(const char *path, const char *text) {
    char *tmp = sb_asprintf("%s.tmp", path);
    int rc = SB_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        rc = -errno;
    for (size_t done = 0, len = strlen(text); rc == SB_OK && done < len;) {
        ssize_t w = write(fd, text + done, len - done);
        if (w > 0)
            done += (size_t)w;
        else if (w == 0 || errno != EINTR)
            rc = w == 0 ? SB_EIO : -errno;
    }
    if (rc == SB_OK && fsync(fd) != 0)
        rc = -errno;
    if (fd >= 0 && close(fd) != 0 && rc == SB_OK)
        rc = -errno;
    if (rc == SB_OK && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == SB_OK) {
        /* make the rename itself durable */
        const char *slash = strrchr(path, '/');
        char *dir = slash ? sb_strndup(path, slash == path ? 1 : (size_t)(slash - path)) : sb_strdup(".");
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            fsync(dfd);
            close(dfd);
        }
        sb_free(dir);
    } else {
        unlink(tmp);
    }
    sb_free(tmp);
    return rc;
}

/* ---- matching and URLs ----------------------------------------------------------------------- */

int sb_upstream_pattern_match(const char *pattern, const char *value, int ignore_case, int star_ok) {
    size_t vlen = strlen(value);
    for (const char *p = pattern;;) {
        const char *comma = strchr(p, ',');
        const char *a = p, *b = comma ? comma : p + strlen(p);
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        size_t n = (size_t)(b - a);
        if (n == 1 && *a == '*') {
            if (star_ok)
                return 1;
        } else if (n == vlen && (ignore_case ? strncasecmp(a, value, n) : strncmp(a, value, n)) == 0) {
            return 1;
        }
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

const sb_upstream_template *sb_upstream_match(const sb_upstream_settings *s, const char *hub,
                                              const char *category, const char *event,
                                              int star_includes_connect) {
    int connect = strcmp(category, SB_UPSTREAM_CATEGORY_CONNECTIONS) == 0 &&
                  strcmp(event, SB_UPSTREAM_EVENT_CONNECT) == 0;
    for (size_t i = 0; i < s->n; i++) {
        const sb_upstream_template *t = &s->v[i];
        if (sb_upstream_pattern_match(t->hub_pattern, hub, 1, 1) &&
            sb_upstream_pattern_match(t->category_pattern, category, 0, 1) &&
            sb_upstream_pattern_match(t->event_pattern, event, 0, !connect || star_includes_connect))
            return t;
    }
    return NULL;
}

void sb_upstream_escape(const char *s, sb_buf *out) {
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            sb_buf_appendc(out, (char)*p);
        } else {
            char e[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            sb_buf_append(out, e, 3);
        }
    }
}

void sb_upstream_expand(const char *url_template, const char *hub, const char *category, const char *event,
                        sb_buf *out) {
    static const struct {
        const char *name;
        size_t len;
    } params[] = {{"{hub}", 5}, {"{category}", 10}, {"{event}", 7}};
    const char *values[] = {hub, category, event};
    for (const char *p = url_template; *p;) {
        size_t i = 0;
        if (*p == '{')
            while (i < 3 && strncmp(p, params[i].name, params[i].len) != 0)
                i++;
        if (*p == '{' && i < 3) {
            sb_upstream_escape(values[i], out);
            p += params[i].len;
        } else {
            sb_buf_appendc(out, *p++);
        }
    }
}

/* ---- header values --------------------------------------------------------------------------- */

void sb_upstream_signature(const char *const *keys, size_t nkeys, const char *connection_id, sb_buf *out) {
    static const char hex[] = "0123456789ABCDEF";
    static const unsigned char no_key; /* HMAC() wants a non-NULL key pointer even when it is empty */
    for (size_t k = 0; k < nkeys; k++) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        size_t klen = strlen(keys[k]);
        HMAC(EVP_sha256(), klen ? (const void *)keys[k] : &no_key, (int)klen,
             (const unsigned char *)connection_id, strlen(connection_id), md, &mdlen);
        sb_buf_appends(out, k ? ",sha256=" : "sha256=");
        for (unsigned int i = 0; i < mdlen; i++) {
            sb_buf_appendc(out, hex[md[i] >> 4]);
            sb_buf_appendc(out, hex[md[i] & 15]);
        }
    }
}

void sb_upstream_header_value(const char *s, sb_buf *out) {
    for (; *s; s++)
        sb_buf_appendc(out, (unsigned char)*s < 0x20 || *s == 0x7F ? ' ' : *s);
}

static int system_claim(const char *name) {
    if (strncmp(name, "asrs.s.", 7) == 0)
        return 1;
    for (size_t i = 0; i < sizeof system_claims / sizeof system_claims[0]; i++)
        if (strcmp(name, system_claims[i]) == 0)
            return 1;
    return 0;
}

static void append_claim(sb_buf *out, const char *type, json_t *value) {
    if (json_is_null(value))
        return;
    if (out->len)
        sb_buf_appends(out, ", ");
    sb_upstream_header_value(type, out);
    sb_buf_appends(out, ": ");
    if (json_is_string(value)) {
        sb_upstream_header_value(json_string_value(value), out);
    } else {
        char *text = json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        sb_upstream_header_value(text ? text : "", out);
        free(text);
    }
}

void sb_upstream_claims_header(json_t *claims, sb_buf *out) {
    sb_buf b;
    sb_buf_init(&b);
    const char *key;
    json_t *value;
    json_object_foreach(claims, key, value) {
        if (system_claim(key))
            continue;
        const char *type = strncmp(key, "asrs.u.", 7) == 0 ? key + 7 : key;
        if (json_is_array(value)) {
            size_t i;
            json_t *item;
            json_array_foreach(value, i, item) append_claim(&b, type, item);
        } else {
            append_claim(&b, type, value);
        }
    }
    if (b.len)
        sb_buf_append(out, b.data, b.len);
    sb_buf_free(&b);
}
