/*
 * diag_cli.c - `switchboard diag`; see diag_cli.h.
 *
 * Which service: the endpoint is --endpoint, else the configuration's
 * public_endpoint, else http://<listen> (http://127.0.0.1:8080 with the
 * defaults).  The resource id is built from the configuration (defaults,
 * --config FILE, SWITCHBOARD_* environment) with --subscription,
 * --resource-group and --resource-name overriding, exactly as the service
 * builds its own, so the CLI and a service sharing a configuration agree.
 *
 * Auth: a short-lived HS256 token signed with the access key (--access-key,
 * else the configuration's access_key, else the first line of
 * <data-dir>/accesskey, the file the service generates), audience = endpoint
 * + request path, as the management API requires.  The token carries no user
 * claim, so the activity log names the caller "accessKey".
 *
 * `set` builds the ARM body from names: --storage local becomes
 * /subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.Storage/storageAccounts/local
 * (a value starting with '/' is taken as a full id).  Without --storage or
 * --workspace the setting archives to the storage account "local" (the
 * default declared one).  All validation is the service's: the CLI only
 * refuses what it cannot express.
 *
 * Not here: anything that touches the service's state directly.
 */
#include "diag/diag_cli.h"

#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/jwt.h"
#include "config.h"
#include "net/http_parse.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/error.h"

#define INSIGHTS_API_VERSION "2021-05-01-preview"
#define SIGNALR_API_VERSION "2024-03-01"
#define TOKEN_TTL_SECONDS 600

typedef struct cli {
    sb_config cfg;
    const char *endpoint_flag, *key_flag;
    char *endpoint; /* without trailing '/' */
    char *key;
    char *resource_id;
} cli;

static void usage(FILE *out) {
    fprintf(out,
            "usage: switchboard diag list\n"
            "       switchboard diag get NAME\n"
            "       switchboard diag set NAME [--storage NAME|ID] [--workspace NAME|ID]\n"
            "                                 [--logs allLogs|audit|AllLogs|none[,...]] [--metrics on|off]\n"
            "       switchboard diag delete NAME\n"
            "       switchboard diag log-types [--connectivity on|off] [--messaging on|off] [--http on|off]\n"
            "common: [--endpoint URL] [--data-dir DIR] [--access-key KEY] [--config FILE]\n"
            "        [--subscription ID] [--resource-group NAME] [--resource-name NAME]\n\n"
            "set: without --storage/--workspace the setting archives to storage account 'local';\n"
            "     --logs defaults to allLogs, --metrics to off.\n"
            "log-types: without flags, shows the resource (its resourceLogConfiguration); 'on' collects the\n"
            "     type for every connection, 'off' only for diagnostic clients.\n");
}

static int err_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int err_usage(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "switchboard diag: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    return 2;
}

/* ---- setup --------------------------------------------------------------------------------------- */

static char *read_key_file(const char *data_dir) {
    char *path = sb_asprintf("%s/accesskey", data_dir);
    FILE *f = fopen(path, "r");
    char line[512] = "";
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = '\0';
        fclose(f);
    }
    line[strcspn(line, "\r\n")] = '\0';
    if (!line[0])
        fprintf(stderr,
                "switchboard diag: no access key: give --access-key, or --data-dir of the service (%s %s)\n",
                path, f ? "is empty" : "cannot be read");
    sb_free(path);
    return line[0] ? sb_strdup(line) : NULL;
}

static int setup(cli *x) {
    if (x->endpoint_flag)
        x->endpoint = sb_strdup(x->endpoint_flag);
    else if (x->cfg.public_endpoint[0])
        x->endpoint = sb_strdup(x->cfg.public_endpoint);
    else
        x->endpoint = sb_asprintf("http://%s", x->cfg.listen);
    size_t n = strlen(x->endpoint);
    while (n && x->endpoint[n - 1] == '/')
        x->endpoint[--n] = '\0';
    if (x->key_flag)
        x->key = sb_strdup(x->key_flag);
    else if (x->cfg.access_key[0])
        x->key = sb_strdup(x->cfg.access_key);
    else if (!(x->key = read_key_file(x->cfg.data_dir)))
        return 1;
    x->resource_id =
        sb_asprintf("/subscriptions/%s/resourceGroups/%s/providers/Microsoft.SignalRService/SignalR/%s",
                    x->cfg.subscription_id, x->cfg.resource_group, x->cfg.resource_name);
    return 0;
}

/* ---- HTTP ---------------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud) {
    sb_buf_append(ud, p, size * n);
    return size * n;
}

/* Request endpoint+path?api-version=v.  Returns the HTTP status (0 on a transport error, reported). */
static long call(const cli *x, const char *method, const char *path, const char *api_version, json_t *body,
                 sb_buf *out) {
    char *url = sb_asprintf("%s%s?api-version=%s", x->endpoint, path, api_version);
    char *aud = sb_asprintf("%s%s", x->endpoint, path);
    time_t now = time(NULL);
    json_t *claims = json_pack("{s:s, s:I, s:I, s:I}", "aud", aud, "iat", (json_int_t)now, "nbf",
                               (json_int_t)now, "exp", (json_int_t)(now + TOKEN_TTL_SECONDS));
    char *token = NULL, *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    long status = 0;
    if (sb_jwt_sign("HS256", x->key, strlen(x->key), claims, &token) != SB_OK) {
        fprintf(stderr, "switchboard diag: cannot sign the token\n");
        goto out;
    }
    char *auth = sb_asprintf("Authorization: Bearer %s", token);
    struct curl_slist *hdrs = curl_slist_append(NULL, auth);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (text)
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    CURL *h = curl_easy_init();
    if (!h) {
        fprintf(stderr, "switchboard diag: cannot initialise libcurl\n");
    } else {
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        if (text) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
        }
        CURLcode rc = curl_easy_perform(h);
        if (rc != CURLE_OK)
            fprintf(stderr, "switchboard diag: %s %s: %s\n", method, url, curl_easy_strerror(rc));
        else
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(h);
    }
    curl_slist_free_all(hdrs);
    sb_free(auth);
out:
    free(token);
    free(text);
    json_decref(claims);
    sb_free(aud);
    sb_free(url);
    return status;
}

/* Print the answer: pretty JSON on success, the ARM error message on failure.  Returns the exit code. */
static int report(long status, const sb_buf *body) {
    if (!status)
        return 1;
    json_t *j = body->len ? json_loadb(body->data, body->len, 0, NULL) : NULL;
    int rc = 0;
    if (status >= 200 && status < 300) {
        if (j) {
            char *pretty = json_dumps(j, JSON_INDENT(2));
            printf("%s\n", pretty);
            free(pretty);
        } else if (body->len) {
            printf("%s\n", body->data);
        }
    } else {
        const char *msg = json_string_value(json_object_get(json_object_get(j, "error"), "message"));
        const char *code = json_string_value(json_object_get(json_object_get(j, "error"), "code"));
        fprintf(stderr, "switchboard diag: HTTP %ld%s%s: %s\n", status, code ? " " : "", code ? code : "",
                msg         ? msg
                : body->len ? body->data
                            : "(no message)");
        rc = 1;
    }
    json_decref(j);
    return rc;
}

static char *setting_path(const cli *x, const char *name) {
    sb_buf b;
    sb_buf_init(&b);
    sb_buf_appendf(&b, "%s/providers/Microsoft.Insights/diagnosticSettings", x->resource_id);
    if (name) {
        sb_buf_appendc(&b, '/');
        sb_url_encode(name, strlen(name), &b);
    }
    return sb_buf_steal(&b, NULL);
}

/* ---- verbs --------------------------------------------------------------------------------------- */

typedef struct set_opts {
    const char *storage, *workspace, *logs, *metrics;
    const char *types[3]; /* connectivity, messaging, http: "on"/"off" or NULL */
} set_opts;

static int on_off(const char *v, const char *flag, int *out) {
    if (strcmp(v, "on") == 0 || strcmp(v, "true") == 0)
        *out = 1;
    else if (strcmp(v, "off") == 0 || strcmp(v, "false") == 0)
        *out = 0;
    else
        return err_usage("%s takes on or off", flag);
    return 0;
}

static char *arm_id(const cli *x, const char *v, const char *type) {
    return v[0] == '/' ? sb_strdup(v)
                       : sb_asprintf("/subscriptions/%s/resourceGroups/%s/providers/%s/%s",
                                     x->cfg.subscription_id, x->cfg.resource_group, type, v);
}

/* logs[] for --logs (comma-separated); NULL after a usage error was printed. */
static json_t *logs_array(const char *spec) {
    json_t *logs = json_array();
    if (strcmp(spec, "none") == 0)
        return logs;
    char *copy = sb_strdup(spec), *save = NULL;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        const char *key = strcmp(t, "AllLogs") == 0                              ? "category"
                          : strcmp(t, "allLogs") == 0 || strcmp(t, "audit") == 0 ? "categoryGroup"
                                                                                 : NULL;
        if (!key) {
            err_usage("--logs takes allLogs, audit, AllLogs or none (not '%s')", t);
            json_decref(logs);
            logs = NULL;
            break;
        }
        json_array_append_new(logs, json_pack("{s:s, s:b}", key, t, "enabled", 1));
    }
    sb_free(copy);
    return logs;
}

static int cmd_set(const cli *x, const char *name, const set_opts *o) {
    int metrics = 0;
    if (o->metrics && on_off(o->metrics, "--metrics", &metrics))
        return 2;
    json_t *logs = logs_array(o->logs ? o->logs : "allLogs");
    if (!logs)
        return 2;
    const char *storage = o->storage ? o->storage : o->workspace ? NULL : "local";
    char *sid = storage ? arm_id(x, storage, "Microsoft.Storage/storageAccounts") : NULL;
    char *wid = o->workspace ? arm_id(x, o->workspace, "Microsoft.OperationalInsights/workspaces") : NULL;
    json_t *body =
        json_pack("{s:{s:s?, s:s?, s:o, s:[{s:s, s:b}]}}", "properties", "storageAccountId", sid,
                  "workspaceId", wid, "logs", logs, "metrics", "category", "AllMetrics", "enabled", metrics);
    char *path = setting_path(x, name);
    sb_buf out;
    sb_buf_init(&out);
    int rc = report(call(x, "PUT", path, INSIGHTS_API_VERSION, body, &out), &out);
    sb_buf_free(&out);
    sb_free(path);
    json_decref(body);
    sb_free(sid);
    sb_free(wid);
    return rc;
}

static int cmd_read(const cli *x, const char *name) {
    char *path = setting_path(x, name);
    sb_buf out;
    sb_buf_init(&out);
    int rc = report(call(x, "GET", path, INSIGHTS_API_VERSION, NULL, &out), &out);
    sb_buf_free(&out);
    sb_free(path);
    return rc;
}

static int cmd_delete(const cli *x, const char *name) {
    char *path = setting_path(x, name);
    sb_buf out;
    sb_buf_init(&out);
    long status = call(x, "DELETE", path, INSIGHTS_API_VERSION, NULL, &out);
    int rc = report(status, &out);
    if (status == 200)
        printf("Deleted diagnostic setting '%s'.\n", name);
    else if (status == 204)
        printf("There is no diagnostic setting '%s'.\n", name);
    sb_buf_free(&out);
    sb_free(path);
    return rc;
}

static int cmd_log_types(const cli *x, const set_opts *o) {
    static const char *const names[] = {"ConnectivityLogs", "MessagingLogs", "HttpRequestLogs"};
    static const char *const flags[] = {"--connectivity", "--messaging", "--http"};
    json_t *cats = json_array();
    for (int i = 0; i < 3; i++) {
        int on;
        if (!o->types[i])
            continue;
        if (on_off(o->types[i], flags[i], &on)) {
            json_decref(cats);
            return 2;
        }
        json_array_append_new(cats,
                              json_pack("{s:s, s:s}", "name", names[i], "enabled", on ? "true" : "false"));
    }
    json_t *body = json_array_size(cats) ? json_pack("{s:{s:{s:O}}}", "properties",
                                                     "resourceLogConfiguration", "categories", cats)
                                         : NULL;
    sb_buf out;
    sb_buf_init(&out);
    int rc = report(call(x, body ? "PATCH" : "GET", x->resource_id, SIGNALR_API_VERSION, body, &out), &out);
    sb_buf_free(&out);
    json_decref(body);
    json_decref(cats);
    return rc;
}

/* ---- entry --------------------------------------------------------------------------------------- */

int sb_diag_cli(int argc, char **argv) {
    enum {
        O_ENDPOINT = 256,
        O_DATA_DIR,
        O_KEY,
        O_CONFIG,
        O_SUB,
        O_RG,
        O_NAME,
        O_STORAGE,
        O_WORKSPACE,
        O_LOGS,
        O_METRICS,
        O_CONN,
        O_MSG,
        O_HTTP,
        O_HELP
    };
    static const struct option opts[] = {{"endpoint", required_argument, 0, O_ENDPOINT},
                                         {"data-dir", required_argument, 0, O_DATA_DIR},
                                         {"access-key", required_argument, 0, O_KEY},
                                         {"config", required_argument, 0, O_CONFIG},
                                         {"subscription", required_argument, 0, O_SUB},
                                         {"resource-group", required_argument, 0, O_RG},
                                         {"resource-name", required_argument, 0, O_NAME},
                                         {"storage", required_argument, 0, O_STORAGE},
                                         {"workspace", required_argument, 0, O_WORKSPACE},
                                         {"logs", required_argument, 0, O_LOGS},
                                         {"metrics", required_argument, 0, O_METRICS},
                                         {"connectivity", required_argument, 0, O_CONN},
                                         {"messaging", required_argument, 0, O_MSG},
                                         {"http", required_argument, 0, O_HTTP},
                                         {"help", no_argument, 0, O_HELP},
                                         {0, 0, 0, 0}};
    cli x;
    memset(&x, 0, sizeof x);
    set_opts o;
    memset(&o, 0, sizeof o);
    /* flags that override configuration settings, applied after the file and the environment */
    static const char *const override_keys[] = {"data_dir", "subscription_id", "resource_group",
                                                "resource_name"};
    const char *config_file = NULL, *overrides[4] = {0};
    int set_flags = 0, type_flags = 0, ch;
    optind = 1;
    opterr = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case O_ENDPOINT:
            x.endpoint_flag = optarg;
            break;
        case O_KEY:
            x.key_flag = optarg;
            break;
        case O_CONFIG:
            config_file = optarg;
            break;
        case O_DATA_DIR:
            overrides[0] = optarg;
            break;
        case O_SUB:
            overrides[1] = optarg;
            break;
        case O_RG:
            overrides[2] = optarg;
            break;
        case O_NAME:
            overrides[3] = optarg;
            break;
        case O_STORAGE:
            o.storage = optarg, set_flags++;
            break;
        case O_WORKSPACE:
            o.workspace = optarg, set_flags++;
            break;
        case O_LOGS:
            o.logs = optarg, set_flags++;
            break;
        case O_METRICS:
            o.metrics = optarg, set_flags++;
            break;
        case O_CONN:
            o.types[0] = optarg, type_flags++;
            break;
        case O_MSG:
            o.types[1] = optarg, type_flags++;
            break;
        case O_HTTP:
            o.types[2] = optarg, type_flags++;
            break;
        case 'h':
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    const char *verb = optind < argc ? argv[optind] : NULL;
    const char *name = optind + 1 < argc ? argv[optind + 1] : NULL;
    int needs_name = verb && (!strcmp(verb, "get") || !strcmp(verb, "set") || !strcmp(verb, "delete"));
    int known = needs_name || (verb && (!strcmp(verb, "list") || !strcmp(verb, "log-types")));
    if (!known) {
        usage(stderr);
        return verb ? err_usage("unknown command '%s'", verb) : 2;
    }
    if (needs_name && !name)
        return err_usage("%s needs a diagnostic setting NAME", verb);
    if (optind + 1 + needs_name < argc)
        return err_usage("unexpected argument '%s'", argv[optind + 1 + needs_name]);
    if (set_flags && strcmp(verb, "set") != 0)
        return err_usage("--storage, --workspace, --logs and --metrics go with 'set', not '%s'", verb);
    if (type_flags && strcmp(verb, "log-types") != 0)
        return err_usage("--connectivity, --messaging and --http go with 'log-types', not '%s'", verb);

    char err[512];
    int rc = 1;
    sb_config_defaults(&x.cfg);
    if ((config_file && sb_config_load_file(&x.cfg, config_file, err, sizeof err) != SB_OK) ||
        sb_config_load_env(&x.cfg, err, sizeof err) != SB_OK) {
        fprintf(stderr, "switchboard diag: %s\n", err);
        goto out;
    }
    for (size_t i = 0; i < 4; i++)
        if (overrides[i] && sb_config_set(&x.cfg, override_keys[i], overrides[i], err, sizeof err) != SB_OK) {
            fprintf(stderr, "switchboard diag: %s\n", err);
            rc = 2;
            goto out;
        }
    if (setup(&x))
        goto out;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (!strcmp(verb, "list"))
        rc = cmd_read(&x, NULL);
    else if (!strcmp(verb, "get"))
        rc = cmd_read(&x, name);
    else if (!strcmp(verb, "set"))
        rc = cmd_set(&x, name, &o);
    else if (!strcmp(verb, "delete"))
        rc = cmd_delete(&x, name);
    else
        rc = cmd_log_types(&x, &o);
    curl_global_cleanup();
out:
    sb_free(x.endpoint);
    sb_free(x.key);
    sb_free(x.resource_id);
    sb_config_free(&x.cfg);
    return rc;
}
