/*
 * config.c - parsing, environment overrides, help and dump, all driven by
 * SB_CONFIG_TABLE in config.h.  Nothing here knows an individual setting.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/error.h"

typedef struct cfg_entry {
    const char *name;
    enum sb_config_type type;
    const char *def;
    long min, max;
    const char *values;
    const char *help;
    size_t offset;
} cfg_entry;

static const cfg_entry table[] = {
#define SB__CFG_ENTRY(name, type, def, min, max, values, help)                                                  \
    {#name, SB_CFG_##type, def, min, max, values, help, offsetof(sb_config, name)},
    SB_CONFIG_TABLE(SB__CFG_ENTRY)
#undef SB__CFG_ENTRY
};
#define NENTRIES (sizeof(table) / sizeof(table[0]))

static int is_secret(const cfg_entry *e) { return strcmp(e->name, "access_key") == 0; }

static const cfg_entry *find(const char *name) {
    for (size_t i = 0; i < NENTRIES; i++)
        if (strcmp(table[i].name, name) == 0)
            return &table[i];
    return NULL;
}

/* Index of value in "a|b|c", or -1. */
static int enum_index(const char *values, const char *v) {
    int idx = 0;
    const char *p = values;
    size_t n = strlen(v);
    while (*p) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncasecmp(p, v, n) == 0)
            return idx;
        if (!bar)
            break;
        p = bar + 1;
        idx++;
    }
    return -1;
}

static void enum_name(const char *values, int idx, char *out, size_t outlen) {
    const char *p = values;
    for (int i = 0; i < idx && p; i++) {
        p = strchr(p, '|');
        if (p)
            p++;
    }
    if (!p) {
        snprintf(out, outlen, "?");
        return;
    }
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    snprintf(out, outlen, "%.*s", (int)len, p);
}

static int set_entry(sb_config *c, const cfg_entry *e, const char *value, char *err, size_t errlen) {
    char *field = (char *)c + e->offset;
    switch (e->type) {
    case SB_CFG_STRING: {
        char **s = (char **)field;
        sb_free(*s);
        *s = sb_strdup(value);
        return SB_OK;
    }
    case SB_CFG_INT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        while (*end && isspace((unsigned char)*end))
            end++;
        if (errno || end == value || *end) {
            snprintf(err, errlen, "%s: '%s' is not an integer", e->name, value);
            return SB_EINVAL;
        }
        if (v < e->min || v > e->max) {
            snprintf(err, errlen, "%s: %ld is out of range [%ld, %ld]", e->name, v, e->min, e->max);
            return SB_EINVAL;
        }
        *(long *)field = v;
        return SB_OK;
    }
    case SB_CFG_ENUM: {
        int idx = enum_index(e->values, value);
        if (idx < 0) {
            snprintf(err, errlen, "%s: '%s' is not one of %s", e->name, value, e->values);
            return SB_EINVAL;
        }
        *(int *)field = idx;
        return SB_OK;
    }
    }
    return SB_EINVAL;
}

void sb_config_defaults(sb_config *c) {
    memset(c, 0, sizeof(*c));
    char err[256];
    for (size_t i = 0; i < NENTRIES; i++)
        if (set_entry(c, &table[i], table[i].def, err, sizeof err) != SB_OK)
            abort(); /* a bad embedded default is a programming error */
}

void sb_config_free(sb_config *c) {
    for (size_t i = 0; i < NENTRIES; i++)
        if (table[i].type == SB_CFG_STRING) {
            char **s = (char **)((char *)c + table[i].offset);
            sb_free(*s);
            *s = NULL;
        }
    sb_free(c->config_file);
    c->config_file = NULL;
}

int sb_config_set(sb_config *c, const char *name, const char *value, char *err, size_t errlen) {
    const cfg_entry *e = find(name);
    if (!e) {
        snprintf(err, errlen, "unknown setting '%s'", name);
        return SB_EINVAL;
    }
    return set_entry(c, e, value, err, errlen);
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

int sb_config_load_file(sb_config *c, const char *path, char *err, size_t errlen) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    char line[4096];
    int lineno = 0, rc = SB_OK;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            rc = SB_EINVAL;
            break;
        }
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            snprintf(err, errlen, "%s:%d: expected 'key = value'", path, lineno);
            rc = SB_EINVAL;
            break;
        }
        *eq = '\0';
        char *key = trim(s), *val = trim(eq + 1);
        size_t vl = strlen(val);
        if (vl >= 2 && val[0] == '"' && val[vl - 1] == '"') {
            val[vl - 1] = '\0';
            val++;
        }
        char e2[256];
        if (sb_config_set(c, key, val, e2, sizeof e2) != SB_OK) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, e2);
            rc = SB_EINVAL;
            break;
        }
    }
    fclose(f);
    if (rc == SB_OK) {
        sb_free(c->config_file);
        c->config_file = sb_strdup(path);
    }
    return rc;
}

int sb_config_load_env(sb_config *c, char *err, size_t errlen) {
    for (size_t i = 0; i < NENTRIES; i++) {
        char var[128] = "SWITCHBOARD_";
        size_t n = strlen(var);
        for (const char *p = table[i].name; *p && n < sizeof var - 1; p++)
            var[n++] = (char)toupper((unsigned char)*p);
        var[n] = '\0';
        const char *v = getenv(var);
        if (!v)
            continue;
        char e2[256];
        if (set_entry(c, &table[i], v, e2, sizeof e2) != SB_OK) {
            snprintf(err, errlen, "%s: %s", var, e2);
            return SB_EINVAL;
        }
    }
    return SB_OK;
}

static void value_text(const sb_config *c, const cfg_entry *e, char *out, size_t outlen) {
    const char *field = (const char *)c + e->offset;
    switch (e->type) {
    case SB_CFG_STRING:
        snprintf(out, outlen, "%s", *(char *const *)field ? *(char *const *)field : "");
        break;
    case SB_CFG_INT:
        snprintf(out, outlen, "%ld", *(const long *)field);
        break;
    case SB_CFG_ENUM:
        enum_name(e->values, *(const int *)field, out, outlen);
        break;
    }
}

void sb_config_dump(const sb_config *c, FILE *out, int show_secrets) {
    if (c->config_file)
        fprintf(out, "# read from %s\n", c->config_file);
    for (size_t i = 0; i < NENTRIES; i++) {
        char v[1024];
        value_text(c, &table[i], v, sizeof v);
        if (is_secret(&table[i]) && !show_secrets && v[0])
            snprintf(v, sizeof v, "********");
        fprintf(out, "%s = %s\n", table[i].name, v);
    }
}

static void upper_env(const char *name, char *out, size_t outlen) {
    size_t n = (size_t)snprintf(out, outlen, "SWITCHBOARD_");
    for (const char *p = name; *p && n + 1 < outlen; p++)
        out[n++] = (char)toupper((unsigned char)*p);
    out[n] = '\0';
}

void sb_config_help(FILE *out) {
    fprintf(out, "Settings (config file key = value; environment SWITCHBOARD_<KEY>):\n");
    for (size_t i = 0; i < NENTRIES; i++) {
        const cfg_entry *e = &table[i];
        char env[128];
        upper_env(e->name, env, sizeof env);
        fprintf(out, "  %-24s %s\n  %-24s default: %s", e->name, e->help, "", e->def[0] ? e->def : "(empty)");
        if (e->type == SB_CFG_INT)
            fprintf(out, "  range: %ld..%ld", e->min, e->max);
        if (e->type == SB_CFG_ENUM)
            fprintf(out, "  values: %s", e->values);
        fprintf(out, "  env: %s\n", env);
    }
}

void sb_config_markdown(FILE *out) {
    fprintf(out, "| key | environment | default | range / values | meaning |\n|---|---|---|---|---|\n");
    for (size_t i = 0; i < NENTRIES; i++) {
        const cfg_entry *e = &table[i];
        char env[128], range[64] = "";
        upper_env(e->name, env, sizeof env);
        if (e->type == SB_CFG_INT)
            snprintf(range, sizeof range, "%ld..%ld", e->min, e->max);
        if (e->type == SB_CFG_ENUM) {
            /* "a|b" inside a Markdown table cell: escape the bars */
            size_t o = 0;
            for (const char *p = e->values; *p && o + 3 < sizeof range; p++) {
                if (*p == '|')
                    range[o++] = '\\';
                range[o++] = *p;
            }
            range[o] = '\0';
        }
        fprintf(out, "| `%s` | `%s` | `%s` | %s | %s |\n", e->name, env, e->def, range, e->help);
    }
}
