/*
 * logs_cli.h - `switchboard logs`: run KQL against a workspace database
 * directly (no running service needed, safe while the service writes: the
 * database is opened read-only and WAL lets readers run beside the writer).
 *
 *   switchboard logs query '<KQL>' [--workspace NAME] [--timespan 30m|PT30M]
 *                          [--format table|json|csv] [--data-dir DIR] [--config FILE]
 *   switchboard logs samples [--run NAME [--arg NAME=VALUE ...]] [same options as query]
 *
 * `--format json` prints exactly the Logs API response body.  Exit status:
 * 0 success, 1 the query or the workspace failed (message on stderr), 2 usage.
 */
#ifndef SB_KQL_LOGS_CLI_H
#define SB_KQL_LOGS_CLI_H

/* argv[0] is "logs". */
int sb_logs_cli(int argc, char **argv);

#endif
