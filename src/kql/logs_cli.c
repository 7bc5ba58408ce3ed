/*
 * logs_cli.c - `switchboard logs`; see logs_cli.h.
 *
 * Which database: <data-dir>/workspaces/<workspace>.db, the data directory
 * from --data-dir, else the configuration (defaults, --config FILE,
 * SWITCHBOARD_* environment) exactly as the service resolves it.  A
 * workspace name is a plain file name (letters, digits, '-', '_', '.'), so
 * it can never point outside the workspaces directory.
 *
 * Output: `table` aligns columns by characters (UTF-8 aware) under a header
 * and a rule; `csv` is RFC 4180 with a header row; `json` is the Logs API
 * body, one line.  A truncated result says so on stderr.
 *
 * Not here: the engine (exec.c) and the HTTP API (rest/query_api.c).
 */
#include "kql/logs_cli.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "config.h"
#include "kql/datetime.h"
#include "kql/kql.h"
#include "kql/samples.h"
#include "util/alloc.h"
#include "util/error.h"

#define MAX_ARGS 32

typedef struct opts {
    const char *data_dir, *config, *workspace, *timespan, *format, *run;
    const char *args[MAX_ARGS];
    size_t nargs;
} opts;

static void usage(FILE *out) {
    fprintf(out,
            "usage: switchboard logs query '<KQL>' [--workspace NAME] [--timespan 30m|PT30M]\n"
            "                                 [--format table|json|csv] [--data-dir DIR] [--config FILE]\n"
            "       switchboard logs samples [--run NAME [--arg NAME=VALUE ...]] [options as for query]\n\n"
            "Runs a Log Analytics (KQL) query against <data-dir>/workspaces/<workspace>.db (default\n"
            "workspace 'local'); the service need not be running.  Tables: SignalRServiceDiagnosticLogs,\n"
            "AzureActivity.  'samples' lists ready-made troubleshooting queries; --run runs one.\n");
}

static int fail(const char *fmt, const char *a) {
    fprintf(stderr, "switchboard logs: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, "\n");
    return 2;
}

static int parse(int argc, char **argv, opts *o) {
    static const struct option longopts[] = {{"data-dir", required_argument, 0, 'd'},
                                             {"config", required_argument, 0, 'c'},
                                             {"workspace", required_argument, 0, 'w'},
                                             {"timespan", required_argument, 0, 't'},
                                             {"format", required_argument, 0, 'f'},
                                             {"run", required_argument, 0, 'r'},
                                             {"arg", required_argument, 0, 'a'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'd':
            o->data_dir = optarg;
            break;
        case 'c':
            o->config = optarg;
            break;
        case 'w':
            o->workspace = optarg;
            break;
        case 't':
            o->timespan = optarg;
            break;
        case 'f':
            o->format = optarg;
            break;
        case 'r':
            o->run = optarg;
            break;
        case 'a':
            if (!strchr(optarg, '=') || optarg[0] == '=')
                return fail("--arg takes NAME=VALUE, got '%s'", optarg);
            if (o->nargs == MAX_ARGS)
                return fail("too many --arg (%s)", "at most 32");
            o->args[o->nargs++] = optarg;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!o->format)
        o->format = "table";
    if (strcmp(o->format, "table") && strcmp(o->format, "json") && strcmp(o->format, "csv"))
        return fail("--format must be table, json or csv, not '%s'", o->format);
    if (!o->workspace)
        o->workspace = "local";
    for (const char *p = o->workspace; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-' ||
              *p == '_' || (*p == '.' && p != o->workspace)))
            return fail("'%s' is not a workspace name", o->workspace);
    if (!o->workspace[0])
        return fail("'%s' is not a workspace name", o->workspace);
    return 0;
}

/* "30m" / "1.5h" (KQL timespans) become ISO durations; ISO text passes through. */
static char *iso_timespan(const char *s) {
    int64_t ticks;
    if (s[0] == 'P' || s[0] == 'p' || strchr(s, '/'))
        return sb_strdup(s);
    if (sb_kql_ts_parse(s, strlen(s), &ticks) != SB_OK || ticks <= 0)
        return NULL;
    return sb_asprintf("PT%lld.%07lldS", (long long)(ticks / SB_KQL_TICKS_PER_SECOND),
                       (long long)(ticks % SB_KQL_TICKS_PER_SECOND));
}

/* Characters (code points) in a UTF-8 string. */
static size_t width(const char *s) {
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void put_padded(const char *s, size_t w, int last) {
    /* control characters would break the alignment: show them as spaces */
    for (const char *p = s; *p; p++)
        fputc((unsigned char)*p < 0x20 ? ' ' : *p, stdout);
    if (!last)
        for (size_t i = width(s); i < w + 2; i++)
            fputc(' ', stdout);
}

static void print_table(const sb_kql_result *r) {
    size_t nc = r->ncolumns;
    size_t *w = sb_calloc(nc ? nc : 1, sizeof *w);
    char **text = sb_calloc(r->nrows * nc + 1, sizeof *text);
    for (size_t c = 0; c < nc; c++)
        w[c] = width(r->columns[c].name);
    for (size_t i = 0; i < r->nrows; i++)
        for (size_t c = 0; c < nc; c++) {
            char *t = sb_kql_value_to_text(sb_kql_cell(r, i, c), r->columns[c].type);
            text[i * nc + c] = t;
            if (width(t) > w[c])
                w[c] = width(t);
        }
    for (size_t c = 0; c < nc; c++)
        put_padded(r->columns[c].name, w[c], c + 1 == nc);
    fputc('\n', stdout);
    for (size_t c = 0; c < nc; c++) {
        for (size_t k = 0; k < w[c]; k++)
            fputc('-', stdout);
        if (c + 1 < nc)
            fputs("  ", stdout);
    }
    fputc('\n', stdout);
    for (size_t i = 0; i < r->nrows; i++) {
        for (size_t c = 0; c < nc; c++)
            put_padded(text[i * nc + c], w[c], c + 1 == nc);
        fputc('\n', stdout);
    }
    fprintf(stdout, "(%zu row%s)\n", r->nrows, r->nrows == 1 ? "" : "s");
    for (size_t i = 0; i < r->nrows * nc; i++)
        sb_free(text[i]);
    sb_free(text);
    sb_free(w);
}

static void put_csv(const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, stdout);
        return;
    }
    fputc('"', stdout);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', stdout);
        fputc(*s, stdout);
    }
    fputc('"', stdout);
}

static void print_csv(const sb_kql_result *r) {
    for (size_t c = 0; c < r->ncolumns; c++) {
        if (c)
            fputc(',', stdout);
        put_csv(r->columns[c].name);
    }
    fputs("\r\n", stdout);
    for (size_t i = 0; i < r->nrows; i++) {
        for (size_t c = 0; c < r->ncolumns; c++) {
            if (c)
                fputc(',', stdout);
            char *t = sb_kql_value_to_text(sb_kql_cell(r, i, c), r->columns[c].type);
            put_csv(t);
            sb_free(t);
        }
        fputs("\r\n", stdout);
    }
}

static int run_query(const opts *o, const char *query) {
    sb_config cfg;
    char err[4096];
    sb_config_defaults(&cfg);
    if ((o->config && sb_config_load_file(&cfg, o->config, err, sizeof err) != SB_OK) ||
        sb_config_load_env(&cfg, err, sizeof err) != SB_OK) {
        fprintf(stderr, "switchboard logs: %s\n", err);
        sb_config_free(&cfg);
        return 2;
    }
    char *path = sb_asprintf("%s/workspaces/%s.db", o->data_dir ? o->data_dir : cfg.data_dir, o->workspace);
    sb_config_free(&cfg);
    char *timespan = NULL;
    if (o->timespan && !(timespan = iso_timespan(o->timespan))) {
        sb_free(path);
        return fail("--timespan takes a duration such as 30m, 1h, 7d or PT30M, not '%s'", o->timespan);
    }
    struct stat st;
    sqlite3 *db = NULL;
    int rc = 1;
    if (stat(path, &st) != 0) {
        fprintf(
            stderr,
            "switchboard logs: no workspace database at %s (no diagnostic setting has sent logs to workspace "
            "'%s' yet)\n",
            path, o->workspace);
        goto out;
    }
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "switchboard logs: cannot open %s: %s\n", path, sqlite3_errmsg(db));
        goto out;
    }
    sqlite3_busy_timeout(db, 5000);
    sb_kql_result r;
    if (sb_kql_run(db, query, timespan, &r, err, sizeof err) != SB_OK) {
        fprintf(stderr, "%s\n", err);
        goto out;
    }
    if (strcmp(o->format, "json") == 0) {
        json_t *j = sb_kql_result_to_json(&r);
        char *s = json_dumps(j, JSON_COMPACT);
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(j);
    } else if (strcmp(o->format, "csv") == 0) {
        print_csv(&r);
    } else {
        print_table(&r);
    }
    if (r.truncated)
        fprintf(stderr, "switchboard logs: the result was truncated at %zu rows\n", r.nrows);
    sb_kql_result_free(&r);
    rc = 0;
out:
    sqlite3_close(db);
    sb_free(timespan);
    sb_free(path);
    return rc;
}

static int cmd_samples(const opts *o) {
    if (!o->run) {
        for (size_t i = 0; i < sb_kql_nsamples; i++) {
            const sb_kql_sample *s = &sb_kql_samples[i];
            printf("%s\n  %s\n", s->name, s->title);
            for (const char *p = s->query; *p;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                printf("    %.*s\n", (int)n, p);
                p += n + (nl != NULL);
            }
            printf("\n");
        }
        printf("Run one with: switchboard logs samples --run NAME [--arg NAME=VALUE]\n");
        return 0;
    }
    const sb_kql_sample *s = sb_kql_sample_find(o->run);
    if (!s)
        return fail("no sample named '%s' (see 'switchboard logs samples')", o->run);
    char missing[64];
    char *q = sb_kql_sample_expand(s, o->args, o->nargs, missing, sizeof missing);
    if (!q) {
        fprintf(stderr, "switchboard logs: the sample '%s' needs --arg %s=VALUE\n", s->name, missing);
        return 2;
    }
    int rc = run_query(o, q);
    sb_free(q);
    return rc;
}

int sb_logs_cli(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    opts o = {0};
    const char *verb = argv[1];
    if (strcmp(verb, "query") == 0) {
        int rc = parse(argc - 1, argv + 1, &o);
        if (rc)
            return rc == 1 ? 0 : rc;
        if (optind + 1 != argc - 1)
            return fail("%s", optind >= argc - 1 ? "query needs the KQL text as one argument"
                                                 : "query takes one KQL argument (quote it)");
        if (o.run || o.nargs)
            return fail("%s", "--run and --arg belong to 'logs samples'");
        return run_query(&o, argv[1 + optind]);
    }
    if (strcmp(verb, "samples") == 0) {
        int rc = parse(argc - 1, argv + 1, &o);
        if (rc)
            return rc == 1 ? 0 : rc;
        if (optind != argc - 1)
            return fail("unexpected argument '%s'", argv[1 + optind]);
        return cmd_samples(&o);
    }
    fprintf(stderr, "switchboard logs: unknown command '%s'\n", verb);
    usage(stderr);
    return 2;
}
