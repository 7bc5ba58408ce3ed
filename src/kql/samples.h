/*
 * samples.h - ready-made queries for the troubleshooting cases of Azure
 * SignalR Service's resource logs: Microsoft's published sample queries for
 * SignalRServiceDiagnosticLogs (verbatim, prefixed "ms-") and Switchboard's
 * own for the troubleshooting guide (close and abort reasons, unexpected
 * connection growth per user and per IP, authorization failures,
 * throttling, everything about one connection / user / message tracing id).
 *
 * A sample may hold placeholders {name}; sb_kql_sample_expand() replaces
 * each with a KQL string literal of the value (quotes and backslashes
 * escaped), so a value can never change the query's structure.
 *
 * Used by `switchboard logs samples` (logs_cli.c) and the tests.
 */
#ifndef SB_KQL_SAMPLES_H
#define SB_KQL_SAMPLES_H

#include <stddef.h>

typedef struct sb_kql_sample {
    const char *name;  /* e.g. "close-reasons" */
    const char *title; /* one line */
    const char *query;
} sb_kql_sample;

extern const sb_kql_sample sb_kql_samples[];
extern const size_t sb_kql_nsamples;

const sb_kql_sample *sb_kql_sample_find(const char *name);

/*
 * The sample's query with every {name} replaced by the quoted value of the
 * argument named name (args: "name=value" strings).  Returns a heap string
 * (sb_free), or NULL with the missing placeholder's name in missing (cap bytes).
 */
char *sb_kql_sample_expand(const sb_kql_sample *s, const char *const *args, size_t nargs, char *missing,
                           size_t cap);

#endif
