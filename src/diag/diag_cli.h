/*
 * diag_cli.h - `switchboard diag`: manage diagnostic settings and log source
 * settings of a RUNNING service through its management API (rest/mgmt_api.c),
 * the way `az monitor diagnostic-settings` drives Azure.
 *
 *   switchboard diag list
 *   switchboard diag get NAME
 *   switchboard diag set NAME [--storage NAME|ID] [--workspace NAME|ID]
 *                             [--logs allLogs|audit|AllLogs|none[,...]] [--metrics on|off]
 *   switchboard diag delete NAME
 *   switchboard diag log-types [--connectivity on|off] [--messaging on|off] [--http on|off]
 * common flags: --endpoint URL, --data-dir DIR, --access-key KEY, --config FILE,
 *               --subscription ID, --resource-group NAME, --resource-name NAME
 *
 * Prints the service's JSON answer (pretty); exits 0 on success, 1 on an
 * HTTP or connection error (the service's message on stderr), 2 on a usage
 * error.  Blocking I/O (libcurl): this runs in its own process, never in the
 * service.
 */
#ifndef SB_DIAG_CLI_H
#define SB_DIAG_CLI_H

/* argv[0] is "diag" (main passes argc - 1, argv + 1). */
int sb_diag_cli(int argc, char **argv);

#endif
