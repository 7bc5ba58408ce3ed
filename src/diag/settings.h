/*
 * settings.h - diagnostic settings (where resource logs, the activity log and
 * metrics go) and log source settings (which resource-log types are collected
 * for every connection, i.e. "collect all", versus only for diagnostic clients,
 * "collect partially").
 *
 * The model mirrors Azure's ARM resources:
 *   {resourceId}/providers/Microsoft.Insights/diagnosticSettings/{name}
 *     properties: storageAccountId?, workspaceId?, logs[{category|categoryGroup, enabled}],
 *                 metrics[{category:"AllMetrics", enabled}]
 *   {resourceId} properties.resourceLogConfiguration.categories[{name, enabled:"true"|"false"}]
 * Destinations name storage accounts and workspaces declared in configuration
 * (config keys storage_accounts / workspaces); the last segment of the ARM id
 * is the name.  At most SB_DIAG_MAX_SETTINGS settings.
 *
 * Persistence: <data-dir>/diagnostic-settings.json, written atomically
 * (temp file + rename) by the writer thread, read at start-up.
 *
 * Ownership: sb_diag_settings is a plain value (fixed arrays, owned strings);
 * sb_diag_settings_copy() deep-copies, sb_diag_settings_free() releases.
 */
#ifndef SB_DIAG_SETTINGS_H
#define SB_DIAG_SETTINGS_H

#include <jansson.h>

#include "diag/record.h"

#define SB_DIAG_MAX_SETTINGS 5
#define SB_DIAG_NAME_MAX 260

typedef struct sb_diag_setting {
    char name[SB_DIAG_NAME_MAX + 1]; /* 1..SB_DIAG_NAME_MAX bytes */
    char *storage_account_id;        /* full ARM id or NULL */
    char *workspace_id;              /* full ARM id or NULL */
    int logs_all;   /* category AllLogs or categoryGroup allLogs enabled: every resource log */
    int logs_audit; /* categoryGroup audit enabled: Authorization collection + activity log */
    int metrics;    /* AllMetrics enabled */
    /* The ARM arrays as PUT, normalized (compact JSON), so a GET returns what was PUT.  NULL: rendered
     * from the flags above (a setting built in code). */
    char *logs_json;
    char *metrics_json;
    char *destination_type; /* logAnalyticsDestinationType ("Dedicated" / "AzureDiagnostics") or NULL */
} sb_diag_setting;

typedef struct sb_diag_settings {
    sb_diag_setting v[SB_DIAG_MAX_SETTINGS];
    size_t n;
    int type_enabled[SB_LOGT_COUNT]; /* log source settings: 1 = collect all, 0 = diagnostic clients only */
} sb_diag_settings;

void sb_diag_settings_init(sb_diag_settings *s); /* no settings; every type enabled */
void sb_diag_settings_free(sb_diag_settings *s);
void sb_diag_settings_copy(sb_diag_settings *dst, const sb_diag_settings *src);

/*
 * Load from / serialize to the persisted JSON document
 *   {"diagnosticSettings":[{"name", "properties":{ARM properties}}],
 *    "resourceLogConfiguration":{"categories":[{"name","enabled":"true"|"false"}]}}
 * load (re)initialises *s (pass an empty or freed value).  A missing file is SB_OK with the defaults
 * (first start); anything unreadable or invalid is SB_EINVAL / -errno with a message in err and *s left
 * at the defaults.  Destination names are not checked against the configuration here (it may have
 * changed since the file was written): the pipeline decides what an undeclared name means.
 */
int sb_diag_settings_load(sb_diag_settings *s, const char *path, char *err, size_t errlen);
int sb_diag_settings_load_json(sb_diag_settings *s, json_t *doc, char *err, size_t errlen);
json_t *sb_diag_settings_to_json(const sb_diag_settings *s);

/* Does any setting route resource logs anywhere?  (No setting: resource logs are not collected.) */
int sb_diag_settings_collecting(const sb_diag_settings *s);
/* Does any setting export metrics? */
int sb_diag_settings_metrics(const sb_diag_settings *s);

/* The storage account / workspace NAME of an ARM id (its last segment), or NULL if id is NULL. */
const char *sb_diag_resource_name(const char *arm_id);

/* ---- ARM conversion (management API, CLI) --------------------------------------------------------- */

/* The destinations a setting may name: comma-separated names (config keys storage_accounts and
 * workspaces).  NULL lists (or a NULL sb_diag_destinations) skip the check. */
typedef struct sb_diag_destinations {
    const char *storage_accounts;
    const char *workspaces;
} sb_diag_destinations;

void sb_diag_setting_free(sb_diag_setting *d);
void sb_diag_setting_copy(sb_diag_setting *dst, const sb_diag_setting *src);

/* Diagnostic setting names: 1..SB_DIAG_NAME_MAX bytes of UTF-8, none of <>*%&:\?/+ nor control
 * characters.  SB_OK, or SB_EINVAL with the 400 message in err. */
int sb_diag_setting_name_check(const char *name, size_t len, char *err, size_t errlen);

/*
 * An ARM PUT body {"properties":{...}} -> *out (named name, which must pass the name check).  Validates
 * like Azure Monitor: logs[] entries {category:"AllLogs" | categoryGroup:"allLogs"|"audit", enabled:bool,
 * retentionPolicy?}, metrics[] entries {category:"AllMetrics", enabled:bool, timeGrain?}, at least one
 * destination, storageAccountId / workspaceId well-formed and naming a declared destination; Event Hubs
 * and partner destinations are refused.  Returns SB_OK, or SB_EINVAL with the 400 message in err and
 * *out zeroed.  *out is always safe to pass to sb_diag_setting_free().
 */
int sb_diag_setting_from_arm(const char *name, json_t *body, const sb_diag_destinations *dst,
                             sb_diag_setting *out, char *err, size_t errlen);
/* ARM properties object of a setting (what sb_diag_setting_from_arm accepts back). */
json_t *sb_diag_setting_properties(const sb_diag_setting *d);
/* The ARM resource {id, type, name, properties}; resource_id is the SignalR resource's id. */
json_t *sb_diag_setting_to_arm(const sb_diag_setting *d, const char *resource_id);

/* Index of the setting called name (ARM names compare case-insensitively), or -1. */
int sb_diag_settings_find(const sb_diag_settings *s, const char *name);
/* Add d, or replace the setting of the same name; takes ownership of d's strings (d is zeroed).
 * SB_E2BIG with the 400 message in err when d is new and SB_DIAG_MAX_SETTINGS exist (d untouched). */
int sb_diag_settings_put(sb_diag_settings *s, sb_diag_setting *d, char *err, size_t errlen);
/* SB_OK, or SB_ENOENT when no setting has that name. */
int sb_diag_settings_remove(sb_diag_settings *s, const char *name);

/* Log source settings by category name: "ConnectivityLogs", "MessagingLogs", "HttpRequestLogs". */
const char *sb_diag_log_type_category(sb_log_type t);
/* Case-insensitive; -1 when unknown. */
int sb_diag_log_type_from_category(const char *name);
/*
 * Apply an ARM resourceLogConfiguration {"categories":[{name, enabled}]} to s->type_enabled: enabled is
 * "true"/"false" (any case) or a JSON boolean; only the listed categories change.  All-or-nothing:
 * SB_EINVAL with the 400 message in err leaves s unchanged.
 */
int sb_diag_log_config_from_arm(sb_diag_settings *s, json_t *config, char *err, size_t errlen);
/* {"categories":[{"name":"ConnectivityLogs","enabled":"true"}, ...]} (ARM's string booleans). */
json_t *sb_diag_log_config_to_arm(const sb_diag_settings *s);

#endif
