/*
 * msglog.c - message tracing ids and the messaging log, as the SDK writes them.
 *
 * Tracing ids (MessageWithTracingIdHelper): a random 28-bit prefix chosen once
 * per process, shifted into bits 59..32, plus a 32-bit counter whose first
 * value is 0.  They are logged in decimal so app-server lines can be joined
 * with the service's messaging logs by id.
 *
 * The log (--log FILE) gets one line per event: an ISO-8601 UTC timestamp with
 * milliseconds, a space, then the SDK's text (MessageLog.cs templates, spelled
 * by the callers in outbound.c, acks.c, client_conn.c and server_conn.c).
 * Writes are synchronous and flushed per line: this is a test tool, and a
 * test reading the file must see every line once the message has arrived.
 */
#include <stdarg.h>
#include <sys/random.h>
#include <time.h>

#include "appserver.h"
#include "util/error.h"

int sb_app_log_open(sb_app *app, const char *path) {
    app->log = fopen(path, "a");
    return app->log ? SB_OK : SB_EIO;
}

void sb_app_log_close(sb_app *app) {
    if (app->log)
        fclose(app->log);
    app->log = NULL;
}

void sb_app_log(sb_app *app, const char *fmt, ...) {
    if (!app->log)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(app->log, "%s.%03ldZ ", stamp, ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(app->log, fmt, ap);
    va_end(ap);
    fputc('\n', app->log);
    fflush(app->log);
}

void sb_app_tracing_init(sb_app *app) {
    uint32_t r;
    if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
        r = (uint32_t)time(NULL) ^ (uint32_t)clock();
    app->tracing_prefix = (uint64_t)(r & 0x0FFFFFFFu) << 32;
    app->tracing_counter = 0;
}

uint64_t sb_app_tracing_next(sb_app *app) {
    return app->tracing_prefix | app->tracing_counter++;
}
