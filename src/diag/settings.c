/*
 * settings.c - diagnostic settings and log source settings as values: the
 * ARM shapes they arrive in (management API PUT/PATCH bodies), the ARM
 * shapes they are shown in, the persisted document, and the questions the
 * pipeline asks of them (is anything collected, are metrics exported).
 *
 * Invariants of an sb_diag_settings value:
 *  - at most SB_DIAG_MAX_SETTINGS settings, names unique ignoring case and
 *    valid by sb_diag_setting_name_check();
 *  - every setting has at least one destination, and each destination id is
 *    a well-formed ARM id of the right resource type;
 *  - logs_json / metrics_json, when set, are the normalized arrays the flags
 *    were derived from, so rendering never contradicts the flags.
 * The persisted document is parsed by the same code as a PUT body, so
 * nothing can be loaded from disk that the API would have refused (except
 * destination names, which are checked against the configuration only on
 * PUT: a name dropped from the configuration later is the pipeline's call).
 *
 * Validation follows Azure Monitor's diagnostic-settings API: one category
 * ("AllLogs") and two category groups ("allLogs", "audit") which cannot be
 * mixed in one setting, metric category "AllMetrics" only, retention policies
 * refused (Azure no longer accepts them for new settings), Event Hubs and
 * partner destinations refused because this service has neither.  Error
 * texts are the 400 messages the management API returns as they are.
 *
 * Called by: rest/mgmt_api.c (loop thread), diag/pipeline.c (start-up load,
 * persistence on the writer thread: everything here is reentrant and touches
 * no global state).  Not here: HTTP, auth, applying settings (diag.h).
 */
#include "diag/settings.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "diag/names.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/utf8.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_ARM_ID 1024 /* longer destination ids are refused rather than stored */

static const char *const type_categories[SB_LOGT_COUNT] = {
    [SB_LOGT_CONNECTIVITY] = SB_LOG_TYPE_CONNECTIVITY,
    [SB_LOGT_MESSAGING] = SB_LOG_TYPE_MESSAGING,
    [SB_LOGT_HTTP] = SB_LOG_TYPE_HTTP,
};

/* The 400 message.  A user string quoted into it may be cut by the buffer size: cut back to a
 * character boundary so the text stays valid UTF-8 (it becomes a JSON string). */
static int bad(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t errlen, const char *fmt, ...) {
    if (errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
        size_t n = strlen(err);
        while (n && !sb_utf8_valid(err, n))
            err[--n] = '\0';
    }
    return SB_EINVAL;
}

/* ---- values -------------------------------------------------------------------------------------- */

void sb_diag_settings_init(sb_diag_settings *s) {
    memset(s, 0, sizeof *s);
    for (int t = 0; t < SB_LOGT_COUNT; t++)
        s->type_enabled[t] = 1;
}

void sb_diag_setting_free(sb_diag_setting *d) {
    sb_free(d->storage_account_id);
    sb_free(d->workspace_id);
    sb_free(d->logs_json);
    sb_free(d->metrics_json);
    sb_free(d->destination_type);
    memset(d, 0, sizeof *d);
}

static char *dup_or_null(const char *s) {
    return s ? sb_strdup(s) : NULL;
}

void sb_diag_setting_copy(sb_diag_setting *dst, const sb_diag_setting *src) {
    *dst = *src;
    dst->storage_account_id = dup_or_null(src->storage_account_id);
    dst->workspace_id = dup_or_null(src->workspace_id);
    dst->logs_json = dup_or_null(src->logs_json);
    dst->metrics_json = dup_or_null(src->metrics_json);
    dst->destination_type = dup_or_null(src->destination_type);
}

void sb_diag_settings_free(sb_diag_settings *s) {
    for (size_t i = 0; i < s->n; i++)
        sb_diag_setting_free(&s->v[i]);
    s->n = 0;
}

void sb_diag_settings_copy(sb_diag_settings *dst, const sb_diag_settings *src) {
    memset(dst, 0, sizeof *dst);
    memcpy(dst->type_enabled, src->type_enabled, sizeof dst->type_enabled);
    dst->n = src->n;
    for (size_t i = 0; i < src->n; i++)
        sb_diag_setting_copy(&dst->v[i], &src->v[i]);
}

int sb_diag_settings_collecting(const sb_diag_settings *s) {
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].logs_all || s->v[i].logs_audit)
            return 1;
    return 0;
}

int sb_diag_settings_metrics(const sb_diag_settings *s) {
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i].metrics)
            return 1;
    return 0;
}

const char *sb_diag_resource_name(const char *arm_id) {
    if (!arm_id)
        return NULL;
    const char *slash = strrchr(arm_id, '/');
    return slash ? slash + 1 : arm_id;
}

int sb_diag_settings_find(const sb_diag_settings *s, const char *name) {
    for (size_t i = 0; i < s->n; i++)
        if (strcasecmp(s->v[i].name, name) == 0)
            return (int)i;
    return -1;
}

int sb_diag_settings_put(sb_diag_settings *s, sb_diag_setting *d, char *err, size_t errlen) {
    int i = sb_diag_settings_find(s, d->name);
    if (i < 0) {
        if (s->n == SB_DIAG_MAX_SETTINGS) {
            bad(err, errlen,
                "The resource already has the maximum of %d diagnostic settings; delete one before creating "
                "'%s'.",
                SB_DIAG_MAX_SETTINGS, d->name);
            return SB_E2BIG;
        }
        i = (int)s->n++;
    } else {
        sb_diag_setting_free(&s->v[i]);
    }
    s->v[i] = *d;
    memset(d, 0, sizeof *d);
    return SB_OK;
}

int sb_diag_settings_remove(sb_diag_settings *s, const char *name) {
    int i = sb_diag_settings_find(s, name);
    if (i < 0)
        return SB_ENOENT;
    sb_diag_setting_free(&s->v[i]);
    memmove(&s->v[i], &s->v[i + 1], (s->n - (size_t)i - 1) * sizeof s->v[0]);
    s->n--;
    memset(&s->v[s->n], 0, sizeof s->v[0]);
    return SB_OK;
}

/* ---- names and ids ------------------------------------------------------------------------------- */

int sb_diag_setting_name_check(const char *name, size_t len, char *err, size_t errlen) {
    if (len == 0)
        return bad(err, errlen, "The diagnostic setting name must not be empty.");
    if (len > SB_DIAG_NAME_MAX)
        return bad(err, errlen, "The diagnostic setting name must be at most %d characters long.",
                   SB_DIAG_NAME_MAX);
    if (memchr(name, 0, len) || !sb_utf8_valid(name, len))
        return bad(err, errlen, "The diagnostic setting name is not valid UTF-8 text.");
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (ch < 0x20 || ch == 0x7f || strchr("<>*%&:\\?/+", ch))
            return bad(
                err, errlen,
                "The diagnostic setting name '%.*s' is invalid: it must not contain control characters "
                "or any of <>*%%&:\\?/+",
                (int)len, name);
    }
    return SB_OK;
}

/*
 * Is id /subscriptions/{s}/resourceGroups/{g}/providers/{provider}/{type}/{name} (literal segments in
 * any case, no segment empty, nothing after the name)?  *name_out points into id.
 */
static int arm_id_parse(const char *id, const char *provider, const char *type, const char **name_out) {
    const char *const literal[] = {
        "subscriptions", NULL, "resourceGroups", NULL, "providers", provider, type, NULL};
    if (strlen(id) > MAX_ARM_ID || id[0] != '/')
        return 0;
    const char *p = id + 1;
    for (size_t i = 0; i < ARRAY_LEN(literal); i++) {
        const char *e = strchrnul(p, '/');
        size_t n = (size_t)(e - p);
        if (!n || (literal[i] && !(strlen(literal[i]) == n && strncasecmp(p, literal[i], n) == 0)))
            return 0;
        if (i + 1 == ARRAY_LEN(literal)) {
            *name_out = p;
            return *e == '\0';
        }
        if (!*e)
            return 0;
        p = e + 1;
    }
    return 0;
}

/* Is name one of the comma-separated names of list (blanks around names ignored)? */
static int list_has(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = strchrnul(p, ',');
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == n && n && memcmp(p, name, n) == 0)
            return 1;
        p = e;
    }
    return 0;
}

/* A string-or-null member; SB_EINVAL when present with another type.  "" counts as absent (Azure echoes
 * unset destinations as ""). */
static int opt_string(json_t *obj, const char *key, const char **out, char *err, size_t errlen) {
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return SB_OK;
    if (!json_is_string(v))
        return bad(err, errlen, "The property '%s' must be a string.", key);
    if (memchr(json_string_value(v), 0, json_string_length(v)))
        return bad(err, errlen, "The property '%s' must not contain NUL characters.", key);
    if (json_string_length(v))
        *out = json_string_value(v);
    return SB_OK;
}

static int parse_destination(json_t *props, const char *key, const char *provider, const char *type,
                             const char *list, const char *what, const char *config_key, char **out,
                             char *err, size_t errlen) {
    const char *id, *name;
    if (opt_string(props, key, &id, err, errlen) != SB_OK)
        return SB_EINVAL;
    if (!id)
        return SB_OK;
    if (!arm_id_parse(id, provider, type, &name))
        return bad(
            err, errlen,
            "The %s '%s' is not a valid resource id: expected "
            "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/%s/%s/{name}.",
            key, id, provider, type);
    if (list && !list_has(list, name))
        return bad(err, errlen, "The %s '%s' does not exist: declare it in the %s setting.", what, name,
                   config_key);
    *out = sb_strdup(id);
    return SB_OK;
}

/* ---- logs[] and metrics[] ------------------------------------------------------------------------ */

static json_t *retention_off(void) {
    return json_pack("{s:b, s:i}", "enabled", 0, "days", 0);
}

/* retentionPolicy: absent, null, or {enabled:false, days:any}. */
static int check_retention(json_t *entry, char *err, size_t errlen) {
    json_t *rp = json_object_get(entry, "retentionPolicy");
    if (!rp || json_is_null(rp))
        return SB_OK;
    if (!json_is_object(rp))
        return bad(err, errlen, "The property 'retentionPolicy' must be an object.");
    json_t *en = json_object_get(rp, "enabled");
    if (en && !json_is_boolean(en))
        return bad(err, errlen, "The property 'retentionPolicy.enabled' must be true or false.");
    if (json_is_true(en))
        return bad(err, errlen,
                   "Diagnostic settings does not support retention for new diagnostic settings.");
    return SB_OK;
}

static int entry_enabled(json_t *entry, const char *what, const char *name, int *out, char *err,
                         size_t errlen) {
    json_t *en = json_object_get(entry, "enabled");
    if (!json_is_boolean(en))
        return bad(err, errlen, "The 'enabled' property of %s '%s' must be true or false.", what, name);
    *out = json_is_true(en);
    return SB_OK;
}

static int array_member(json_t *props, const char *key, json_t **out, char *err, size_t errlen) {
    json_t *a = json_object_get(props, key);
    *out = NULL;
    if (!a || json_is_null(a))
        return SB_OK;
    if (!json_is_array(a))
        return bad(err, errlen, "The property '%s' must be an array.", key);
    *out = a;
    return SB_OK;
}

static char *dump_compact(json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT);
    char *r = sb_strdup(s ? s : "[]");
    free(s);
    return r;
}

enum { LOG_ALLLOGS, LOG_GROUP_ALLLOGS, LOG_GROUP_AUDIT, LOG_KINDS };

static int parse_logs(json_t *props, sb_diag_setting *d, char *err, size_t errlen) {
    static const char *const spelling[LOG_KINDS] = {SB_LOG_CATEGORY_ALLLOGS, "allLogs", "audit"};
    json_t *logs;
    if (array_member(props, "logs", &logs, err, errlen) != SB_OK)
        return SB_EINVAL;
    json_t *norm = json_array();
    int seen[LOG_KINDS] = {0}, rc = SB_OK;
    size_t i;
    json_t *e;
    json_array_foreach(logs, i, e) {
        const char *cat = NULL, *grp = NULL;
        if (!json_is_object(e)) {
            rc = bad(err, errlen, "Each entry of 'logs' must be an object.");
            break;
        }
        if ((rc = opt_string(e, "category", &cat, err, errlen)) != SB_OK ||
            (rc = opt_string(e, "categoryGroup", &grp, err, errlen)) != SB_OK)
            break;
        if (cat && grp) {
            rc =
                bad(err, errlen,
                    "A log setting may have a category or a categoryGroup, not both ('%s', '%s').", cat, grp);
            break;
        }
        if (!cat && !grp) {
            rc = bad(err, errlen, "Each entry of 'logs' needs a category or a categoryGroup.");
            break;
        }
        int kind = cat ? (strcasecmp(cat, SB_LOG_CATEGORY_ALLLOGS) == 0 ? LOG_ALLLOGS : -1)
                       : (strcasecmp(grp, "allLogs") == 0 ? LOG_GROUP_ALLLOGS
                          : strcasecmp(grp, "audit") == 0 ? LOG_GROUP_AUDIT
                                                          : -1);
        if (kind < 0) {
            rc = cat ? bad(err, errlen, "Category '%s' is not supported.", cat)
                     : bad(err, errlen, "Category group '%s' is not supported.", grp);
            break;
        }
        int enabled = 0;
        if ((rc = entry_enabled(e, cat ? "log category" : "category group", spelling[kind], &enabled, err,
                                errlen)) != SB_OK ||
            (rc = check_retention(e, err, errlen)) != SB_OK)
            break;
        if (seen[kind]) {
            rc = bad(err, errlen, "%s '%s' is listed more than once.", cat ? "Category" : "Category group",
                     spelling[kind]);
            break;
        }
        if (kind == LOG_ALLLOGS ? seen[LOG_GROUP_ALLLOGS] || seen[LOG_GROUP_AUDIT] : seen[LOG_ALLLOGS]) {
            rc = bad(err, errlen, "A diagnostic setting cannot combine categories and category groups.");
            break;
        }
        seen[kind] = 1;
        if (enabled && kind != LOG_GROUP_AUDIT)
            d->logs_all = 1;
        if (enabled && kind == LOG_GROUP_AUDIT)
            d->logs_audit = 1;
        json_array_append_new(norm,
                              json_pack("{s:s, s:b, s:o}", cat ? "category" : "categoryGroup", spelling[kind],
                                        "enabled", enabled, "retentionPolicy", retention_off()));
    }
    if (rc == SB_OK)
        d->logs_json = dump_compact(norm);
    json_decref(norm);
    return rc;
}

static int parse_metrics(json_t *props, sb_diag_setting *d, char *err, size_t errlen) {
    json_t *metrics;
    if (array_member(props, "metrics", &metrics, err, errlen) != SB_OK)
        return SB_EINVAL;
    json_t *norm = json_array();
    int seen = 0, rc = SB_OK;
    size_t i;
    json_t *e;
    json_array_foreach(metrics, i, e) {
        const char *cat = NULL, *grain = NULL;
        int enabled = 0;
        if (!json_is_object(e)) {
            rc = bad(err, errlen, "Each entry of 'metrics' must be an object.");
            break;
        }
        if ((rc = opt_string(e, "category", &cat, err, errlen)) != SB_OK)
            break;
        if (!cat) {
            rc = bad(err, errlen, "Each entry of 'metrics' needs a category.");
            break;
        }
        if (strcasecmp(cat, "AllMetrics") != 0) {
            rc = bad(err, errlen, "Metric category '%s' is not supported.", cat);
            break;
        }
        if ((rc = entry_enabled(e, "metric category", "AllMetrics", &enabled, err, errlen)) != SB_OK ||
            (rc = check_retention(e, err, errlen)) != SB_OK ||
            (rc = opt_string(e, "timeGrain", &grain, err, errlen)))
            break;
        if (seen++) {
            rc = bad(err, errlen, "Metric category 'AllMetrics' is listed more than once.");
            break;
        }
        d->metrics = enabled;
        json_t *m = json_pack("{s:s, s:b, s:o}", "category", "AllMetrics", "enabled", enabled,
                              "retentionPolicy", retention_off());
        if (grain)
            json_object_set_new(m, "timeGrain", json_string(grain));
        json_array_append_new(norm, m);
    }
    if (rc == SB_OK)
        d->metrics_json = dump_compact(norm);
    json_decref(norm);
    return rc;
}

/* ---- a setting <-> ARM --------------------------------------------------------------------------- */

static int refuse_destination(json_t *props, const char *key, const char *what, char *err, size_t errlen) {
    json_t *v = json_object_get(props, key);
    if (!v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0))
        return SB_OK;
    return bad(err, errlen, "%s destinations ('%s') are not supported; use storageAccountId or workspaceId.",
               what, key);
}

static int parse_properties(json_t *props, const sb_diag_destinations *dst, sb_diag_setting *d, char *err,
                            size_t errlen) {
    const char *dtype;
    if (refuse_destination(props, "eventHubAuthorizationRuleId", "Event Hubs", err, errlen) ||
        refuse_destination(props, "eventHubName", "Event Hubs", err, errlen) ||
        refuse_destination(props, "serviceBusRuleId", "Service Bus", err, errlen) ||
        refuse_destination(props, "marketplacePartnerId", "Partner solution", err, errlen))
        return SB_EINVAL;
    if (parse_destination(props, "storageAccountId", "Microsoft.Storage", "storageAccounts",
                          dst ? dst->storage_accounts : NULL, "storage account", "storage_accounts",
                          &d->storage_account_id, err, errlen) ||
        parse_destination(props, "workspaceId", "Microsoft.OperationalInsights", "workspaces",
                          dst ? dst->workspaces : NULL, "Log Analytics workspace", "workspaces",
                          &d->workspace_id, err, errlen))
        return SB_EINVAL;
    if (!d->storage_account_id && !d->workspace_id)
        return bad(err, errlen,
                   "A diagnostic setting needs at least one destination: storageAccountId or workspaceId.");
    if (parse_logs(props, d, err, errlen) || parse_metrics(props, d, err, errlen))
        return SB_EINVAL;
    if (opt_string(props, "logAnalyticsDestinationType", &dtype, err, errlen))
        return SB_EINVAL;
    if (dtype) {
        if (strcasecmp(dtype, "Dedicated") != 0 && strcasecmp(dtype, "AzureDiagnostics") != 0)
            return bad(err, errlen,
                       "The logAnalyticsDestinationType '%s' is not supported: use 'Dedicated', "
                       "'AzureDiagnostics' or null.",
                       dtype);
        d->destination_type =
            sb_strdup(strcasecmp(dtype, "Dedicated") == 0 ? "Dedicated" : "AzureDiagnostics");
    }
    return SB_OK;
}

int sb_diag_setting_from_arm(const char *name, json_t *body, const sb_diag_destinations *dst,
                             sb_diag_setting *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    int rc = sb_diag_setting_name_check(name, strlen(name), err, errlen);
    if (rc != SB_OK)
        return rc;
    json_t *props = json_is_object(body) ? json_object_get(body, "properties") : NULL;
    if (!json_is_object(props))
        return bad(err, errlen, "The request body must be a JSON object with a 'properties' object.");
    memcpy(out->name, name, strlen(name) + 1);
    rc = parse_properties(props, dst, out, err, errlen);
    if (rc != SB_OK)
        sb_diag_setting_free(out);
    return rc;
}

/* A stored array, or one derived from the flags when the setting was built in code. */
static json_t *stored_array(const char *text) {
    json_t *a = text ? json_loads(text, 0, NULL) : NULL;
    if (json_is_array(a))
        return a;
    json_decref(a);
    return NULL;
}

json_t *sb_diag_setting_properties(const sb_diag_setting *d) {
    json_t *logs = stored_array(d->logs_json);
    if (!logs) {
        logs = json_array();
        if (d->logs_all)
            json_array_append_new(logs, json_pack("{s:s, s:b, s:o}", "categoryGroup", "allLogs", "enabled", 1,
                                                  "retentionPolicy", retention_off()));
        if (d->logs_audit)
            json_array_append_new(logs, json_pack("{s:s, s:b, s:o}", "categoryGroup", "audit", "enabled", 1,
                                                  "retentionPolicy", retention_off()));
    }
    json_t *metrics = stored_array(d->metrics_json);
    if (!metrics) {
        metrics = json_array();
        if (d->metrics)
            json_array_append_new(metrics, json_pack("{s:s, s:b, s:o}", "category", "AllMetrics", "enabled",
                                                     1, "retentionPolicy", retention_off()));
    }
    return json_pack("{s:s?, s:s?, s:o, s:o, s:s?}", "storageAccountId", d->storage_account_id, "workspaceId",
                     d->workspace_id, "logs", logs, "metrics", metrics, "logAnalyticsDestinationType",
                     d->destination_type);
}

json_t *sb_diag_setting_to_arm(const sb_diag_setting *d, const char *resource_id) {
    char *id = sb_asprintf("%s/providers/microsoft.insights/diagnosticSettings/%s", resource_id, d->name);
    json_t *j = json_pack("{s:s, s:s, s:s, s:o}", "id", id, "type", "Microsoft.Insights/diagnosticSettings",
                          "name", d->name, "properties", sb_diag_setting_properties(d));
    sb_free(id);
    return j;
}

/* ---- log source settings ------------------------------------------------------------------------- */

const char *sb_diag_log_type_category(sb_log_type t) {
    return (unsigned)t < SB_LOGT_COUNT ? type_categories[t] : NULL;
}

int sb_diag_log_type_from_category(const char *name) {
    for (int t = 0; t < SB_LOGT_COUNT; t++)
        if (strcasecmp(name, type_categories[t]) == 0)
            return t;
    return -1;
}

int sb_diag_log_config_from_arm(sb_diag_settings *s, json_t *config, char *err, size_t errlen) {
    int enabled[SB_LOGT_COUNT];
    memcpy(enabled, s->type_enabled, sizeof enabled);
    if (!json_is_object(config))
        return bad(err, errlen, "The property 'resourceLogConfiguration' must be an object.");
    json_t *cats;
    if (array_member(config, "categories", &cats, err, errlen) != SB_OK)
        return SB_EINVAL;
    size_t i;
    json_t *e;
    json_array_foreach(cats, i, e) {
        const char *name;
        if (!json_is_object(e))
            return bad(err, errlen, "Each entry of 'resourceLogConfiguration.categories' must be an object.");
        if (opt_string(e, "name", &name, err, errlen) != SB_OK)
            return SB_EINVAL;
        if (!name)
            return bad(err, errlen, "Each resource log category needs a name.");
        int t = sb_diag_log_type_from_category(name);
        if (t < 0)
            return bad(err, errlen,
                       "Resource log category '%s' is not supported; use ConnectivityLogs, MessagingLogs or "
                       "HttpRequestLogs.",
                       name);
        json_t *v = json_object_get(e, "enabled");
        if (json_is_boolean(v))
            enabled[t] = json_is_true(v);
        else if (json_is_string(v) && strcasecmp(json_string_value(v), "true") == 0)
            enabled[t] = 1;
        else if (json_is_string(v) && strcasecmp(json_string_value(v), "false") == 0)
            enabled[t] = 0;
        else
            return bad(err, errlen,
                       "The 'enabled' value of resource log category '%s' must be \"true\" or \"false\".",
                       type_categories[t]);
    }
    memcpy(s->type_enabled, enabled, sizeof enabled);
    return SB_OK;
}

json_t *sb_diag_log_config_to_arm(const sb_diag_settings *s) {
    json_t *cats = json_array();
    for (int t = 0; t < SB_LOGT_COUNT; t++)
        json_array_append_new(cats, json_pack("{s:s, s:s}", "name", type_categories[t], "enabled",
                                              s->type_enabled[t] ? "true" : "false"));
    return json_pack("{s:o}", "categories", cats);
}

/* ---- the persisted document ---------------------------------------------------------------------- */

json_t *sb_diag_settings_to_json(const sb_diag_settings *s) {
    json_t *list = json_array();
    for (size_t i = 0; i < s->n; i++)
        json_array_append_new(list, json_pack("{s:s, s:o}", "name", s->v[i].name, "properties",
                                              sb_diag_setting_properties(&s->v[i])));
    return json_pack("{s:o, s:o}", "diagnosticSettings", list, "resourceLogConfiguration",
                     sb_diag_log_config_to_arm(s));
}

int sb_diag_settings_load_json(sb_diag_settings *s, json_t *doc, char *err, size_t errlen) {
    sb_diag_settings_init(s);
    if (!json_is_object(doc))
        return bad(err, errlen, "the document is not a JSON object");
    json_t *list;
    char msg[512];
    if (array_member(doc, "diagnosticSettings", &list, msg, sizeof msg) != SB_OK)
        return bad(err, errlen, "%s", msg);
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        json_t *name = json_object_get(e, "name");
        sb_diag_setting d;
        if (!json_is_string(name)) {
            sb_diag_settings_free(s);
            return bad(err, errlen, "diagnosticSettings[%zu] has no name", i);
        }
        if (memchr(json_string_value(name), 0, json_string_length(name))) {
            sb_diag_settings_free(s);
            return bad(err, errlen, "diagnosticSettings[%zu]: the name contains a NUL character", i);
        }
        int rc = sb_diag_setting_from_arm(json_string_value(name), e, NULL, &d, msg, sizeof msg);
        if (rc == SB_OK && sb_diag_settings_find(s, d.name) >= 0)
            rc = bad(msg, sizeof msg, "the name '%s' is used twice", d.name);
        if (rc == SB_OK)
            rc = sb_diag_settings_put(s, &d, msg, sizeof msg);
        if (rc != SB_OK) {
            sb_diag_setting_free(&d);
            sb_diag_settings_free(s);
            return bad(err, errlen, "diagnosticSettings[%zu]: %s", i, msg);
        }
    }
    json_t *cfg = json_object_get(doc, "resourceLogConfiguration");
    if (cfg && !json_is_null(cfg) && sb_diag_log_config_from_arm(s, cfg, msg, sizeof msg) != SB_OK) {
        sb_diag_settings_free(s);
        return bad(err, errlen, "resourceLogConfiguration: %s", msg);
    }
    return SB_OK;
}

int sb_diag_settings_load(sb_diag_settings *s, const char *path, char *err, size_t errlen) {
    sb_diag_settings_init(s);
    FILE *f = fopen(path, "r");
    if (!f) {
        int e = errno;
        if (e == ENOENT)
            return SB_OK;
        bad(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    json_error_t jerr;
    json_t *doc = json_loadf(f, 0, &jerr);
    fclose(f);
    if (!doc)
        return bad(err, errlen, "%s:%d: %s", path, jerr.line, jerr.text);
    char msg[512];
    int rc = sb_diag_settings_load_json(s, doc, msg, sizeof msg);
    json_decref(doc);
    if (rc != SB_OK)
        bad(err, errlen, "%s: %s", path, msg);
    return rc;
}
