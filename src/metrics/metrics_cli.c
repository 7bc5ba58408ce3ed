/*
 * metrics_cli.c - `switchboard metrics`; see metrics_cli.h.
 *
 * Which store: --data-dir, else the configuration's data_dir (defaults,
 * --config FILE, SWITCHBOARD_* environment), as the service resolves it.
 * Reads with sb_metrics_store_scan (the files only: it never talks to the
 * service) and prints as it reads, so a long range needs no memory.  Values
 * come from the same point functions as the API (store.h), so the table and
 * the API agree minute for minute.
 */
#include "metrics/metrics_cli.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "metrics/metrics.h"
#include "metrics/metrics_api.h"
#include "metrics/store.h"
#include "util/alloc.h"
#include "util/error.h"

#define US_PER_MINUTE INT64_C(60000000)

/* Short column headers for the overview, in sb_metric_id order. */
static const char *const short_names[SB_METRIC_COUNT] = {"Closed",  "Connections", "Opened",   "Quota%",
                                                         "InBytes", "Messages",    "OutBytes", "Load%",
                                                         "SysErr%", "UserErr%"};

static void usage(FILE *out) {
    fprintf(out, "usage: switchboard metrics [--metric NAME] [--since DURATION|DATETIME] [--data-dir DIR] "
                 "[--config FILE]\n"
                 "  --since: 90s, 30m, 1h (default), 2d, 1w, an ISO 8601 duration (PT1H) or date-time\n"
                 "  metrics:");
    for (int i = 0; i < SB_METRIC_COUNT; i++)
        fprintf(out, " %s", sb_metric_defs[i].name);
    fputc('\n', out);
}

/* "90s", "30m", "1h", "2d", "1w", an ISO 8601 duration or a date-time -> the range's start. */
static int parse_since(const char *text, int64_t now_us, int64_t *start_us) {
    char *end;
    double v = strtod(text, &end);
    static const struct {
        char unit;
        double seconds;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
    if (end != text && v > 0 && end[0] && !end[1])
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (end[0] == units[i].unit) {
                *start_us = now_us - (int64_t)llround(v * units[i].seconds * 1e6);
                return SB_OK;
            }
    int64_t d;
    if (sb_metrics_parse_duration(text, strlen(text), &d) == SB_OK) {
        *start_us = now_us - d;
        return SB_OK;
    }
    return sb_metrics_parse_datetime(text, strlen(text), start_us);
}

static void print_value(double v, const char *unit, int width) {
    if (strcmp(unit, "Percent") == 0)
        printf(" %*.2f", width, v);
    else if (v == floor(v) && fabs(v) < 1e15)
        printf(" %*.0f", width, v);
    else
        printf(" %*.2f", width, v);
}

static void print_time(int64_t minute) {
    time_t t = (time_t)(minute * 60);
    struct tm tm;
    gmtime_r(&t, &tm);
    printf("%04d-%02d-%02d %02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min);
}

typedef struct table {
    int metric; /* -1: the overview */
    int ncols;  /* per-dimension columns of the chosen metric */
    signed char col_ep[SB_EP_COUNT + SB_CC_COUNT], col_cat[SB_EP_COUNT + SB_CC_COUNT];
    uint32_t categories_seen; /* first pass over ConnectionCloseCount */
    size_t rows;
} table;

static int note_categories(const sb_metrics_minute *m, void *arg) {
    table *t = arg;
    for (int e = 0; e < SB_EP_COUNT; e++)
        for (int c = 0; c < SB_CC_COUNT; c++)
            if (m->closed[e][c])
                t->categories_seen |= 1u << c;
    return 0;
}

static const char *column_name(const table *t, int k) {
    return t->col_cat[k] >= 0 ? sb_close_category_name((sb_close_category)t->col_cat[k])
                              : sb_metrics_endpoint_name((sb_metrics_endpoint)t->col_ep[k]);
}

/* A dimension column is as wide as its name, at least 12. */
static int column_width(const table *t, int k) {
    int n = (int)strlen(column_name(t, k));
    return n > 12 ? n : 12;
}

static int print_row(const sb_metrics_minute *m, void *arg) {
    table *t = arg;
    sb_metrics_point p;
    print_time(m->minute);
    if (t->metric < 0) {
        for (int i = 0; i < SB_METRIC_COUNT; i++) {
            const sb_metric_def *d = &sb_metric_defs[i];
            sb_metrics_minute_point(m, (sb_metric_id)i, SB_METRICS_ALL, SB_METRICS_ALL, &p);
            print_value(p.count ? sb_metrics_point_value(&p, d->primary) : 0, d->unit,
                        (int)strlen(short_names[i]));
        }
    } else {
        const sb_metric_def *d = &sb_metric_defs[t->metric];
        sb_metrics_minute_point(m, (sb_metric_id)t->metric, SB_METRICS_ALL, SB_METRICS_ALL, &p);
        for (int a = 0; a < SB_AGG_N; a++) {
            static const sb_metric_aggregation order[SB_AGG_N] = {SB_AGG_TOTAL, SB_AGG_COUNT, SB_AGG_MINIMUM,
                                                                  SB_AGG_MAXIMUM, SB_AGG_AVERAGE};
            print_value(p.count ? sb_metrics_point_value(&p, order[a]) : 0, d->unit, 10);
        }
        for (int k = 0; k < t->ncols; k++) {
            sb_metrics_minute_point(m, (sb_metric_id)t->metric, t->col_ep[k], t->col_cat[k], &p);
            print_value(p.count ? sb_metrics_point_value(&p, d->primary) : 0, d->unit, column_width(t, k));
        }
    }
    putchar('\n');
    t->rows++;
    return 0;
}

static void print_header(const table *t) {
    printf("%-17s", "minute (UTC)");
    if (t->metric < 0) {
        for (int i = 0; i < SB_METRIC_COUNT; i++)
            printf(" %s", short_names[i]);
    } else {
        printf(" %10s %10s %10s %10s %10s", "Total", "Count", "Minimum", "Maximum", "Average");
        for (int k = 0; k < t->ncols; k++)
            printf(" %*s", column_width(t, k), column_name(t, k));
    }
    putchar('\n');
}

int sb_metrics_cli(int argc, char **argv) {
    static const struct option opts[] = {
        {"metric", required_argument, 0, 'm'},   {"since", required_argument, 0, 's'},
        {"data-dir", required_argument, 0, 'd'}, {"config", required_argument, 0, 'c'},
        {"help", no_argument, 0, 'h'},           {0, 0, 0, 0}};
    const char *metric = NULL, *since = "1h", *data_dir = NULL, *config = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            metric = optarg;
            break;
        case 's':
            since = optarg;
            break;
        case 'd':
            data_dir = optarg;
            break;
        case 'c':
            config = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "switchboard metrics: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    table t = {.metric = -1};
    if (metric && (t.metric = sb_metric_find(metric, strlen(metric))) < 0) {
        fprintf(stderr, "switchboard metrics: unknown metric '%s'\n", metric);
        usage(stderr);
        return 2;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now = (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000, start;
    if (parse_since(since, now, &start) != SB_OK || start >= now) {
        fprintf(stderr,
                "switchboard metrics: --since '%s' is not a duration (90s, 30m, 1h, 2d, 1w, PT1H) or a past "
                "date-time\n",
                since);
        return 2;
    }
    sb_config cfg;
    char err[512];
    sb_config_defaults(&cfg);
    if ((config && sb_config_load_file(&cfg, config, err, sizeof err) != SB_OK) ||
        sb_config_load_env(&cfg, err, sizeof err) != SB_OK) {
        fprintf(stderr, "switchboard metrics: %s\n", err);
        sb_config_free(&cfg);
        return 2;
    }
    char *dir = sb_asprintf("%s/" SB_METRICS_DIR, data_dir ? data_dir : cfg.data_dir);
    sb_config_free(&cfg);

    int64_t from = start / US_PER_MINUTE, to = now / US_PER_MINUTE + 1;
    int rc = SB_OK;
    if (t.metric >= 0) {
        unsigned dims = sb_metric_defs[t.metric].dims;
        if (dims & SB_METRIC_DIM_CATEGORY)
            rc = sb_metrics_store_scan(dir, from, to, note_categories, &t);
        for (int e = 0; (dims & SB_METRIC_DIM_ENDPOINT) && e < SB_EP_COUNT; e++, t.ncols++)
            t.col_ep[t.ncols] = (signed char)e, t.col_cat[t.ncols] = SB_METRICS_ALL;
        for (int c = 0; c < SB_CC_COUNT; c++)
            if (t.categories_seen & (1u << c))
                t.col_ep[t.ncols] = SB_METRICS_ALL, t.col_cat[t.ncols++] = (signed char)c;
        printf("%s (%s; per-dimension columns: %s)\n", sb_metric_defs[t.metric].name,
               sb_metric_defs[t.metric].unit, sb_metric_aggregation_name(sb_metric_defs[t.metric].primary));
    }
    if (rc == SB_OK) {
        print_header(&t);
        rc = sb_metrics_store_scan(dir, from, to, print_row, &t);
    }
    if (rc != SB_OK) {
        fprintf(stderr, "switchboard metrics: cannot read %s: %s\n", dir, sb_strerror(rc));
        sb_free(dir);
        return 1;
    }
    if (!t.rows)
        printf("(no minutes stored in %s since %s)\n", dir, since);
    sb_free(dir);
    return 0;
}
