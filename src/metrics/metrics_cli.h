/*
 * metrics_cli.h - `switchboard metrics`: the platform metrics as a terminal
 * table, one row per stored minute, read straight from the store files
 * (<data_dir>/metrics), so it works whether or not the service runs.
 *
 *   switchboard metrics [--metric NAME] [--since DURATION|DATETIME] [--data-dir DIR] [--config FILE]
 *
 * Without --metric: every metric's primary aggregation, dimensions aggregated
 * away.  With --metric: its Total/Count/Minimum/Maximum/Average and its
 * primary aggregation per dimension value (endpoints; close categories that
 * occur in the range).  --since: 90s, 30m, 1h (default), 2d, 1w, an ISO 8601
 * duration (PT1H) or a date-time.  The minute in progress appears once the
 * service sealed it (within a second after it ends).
 *
 * Exit status: 0 (also when nothing is stored), 1 unreadable store, 2 usage.
 */
#ifndef SB_METRICS_CLI_H
#define SB_METRICS_CLI_H

/* argv[0] is "metrics" (main passes argc - 1, argv + 1). */
int sb_metrics_cli(int argc, char **argv);

#endif
