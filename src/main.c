/*
 * main.c - the command line.  Thin: each verb parses its flags and calls a
 * module.
 *
 *   switchboard serve [--listen HOST:PORT] [--data-dir DIR] [--config FILE]
 *                     [--access-key KEY] [--mode default|serverless]
 *   switchboard token --access-key KEY --aud URL [--user ID] [--ttl SECONDS] [--claim k=v ...]
 *   switchboard config dump [--config FILE] [--show-secrets]
 *   switchboard config docs
 *   switchboard diag list|get|set|delete|log-types ...   (diag/diag_cli.c)
 *   switchboard logs query|samples ...                   (kql/logs_cli.c)
 *   switchboard metrics [--metric NAME] [--since 1h]     (metrics/metrics_cli.c)
 *   switchboard reload [--data-dir DIR]                  (SIGHUP to the running service)
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/jwt.h"
#include "config.h"
#include "diag/diag_cli.h"
#include "kql/logs_cli.h"
#include "metrics/metrics_cli.h"
#include "server.h"
#include "util/alloc.h"
#include "util/error.h"

static void usage(FILE *out) {
    fprintf(out, "usage: switchboard <command> [options]\n\n"
                 "commands:\n"
                 "  serve    run the service (see 'switchboard serve --help')\n"
                 "  token    print a client or REST access token signed with an access key\n"
                 "  config   'config dump' prints the effective settings; 'config docs' the settings table\n"
                 "  metrics  platform metrics of a data dir as a table (see 'switchboard metrics --help')\n"
                 "  reload   graceful reload of a running service: clients reconnect, sinks reopen\n"
                 "  logs     Log Analytics (KQL) queries on a workspace (see 'switchboard logs --help')\n"
                 "  diag     diagnostic settings and log source settings of a running service (see 'switchboard diag --help')\n");
}

static void serve_usage(FILE *out) {
    fprintf(out, "usage: switchboard serve [--listen HOST:PORT] [--data-dir DIR] [--config FILE]\n"
                 "                         [--access-key KEY] [--mode default|serverless]\n\n");
    sb_config_help(out);
}

/* Load defaults, then the config file, then the environment, then flags (the caller applies flags). */
static int load_config(sb_config *cfg, const char *config_file) {
    char err[512];
    sb_config_defaults(cfg);
    if (config_file && sb_config_load_file(cfg, config_file, err, sizeof err) != SB_OK) {
        fprintf(stderr, "switchboard: %s\n", err);
        return 1;
    }
    if (sb_config_load_env(cfg, err, sizeof err) != SB_OK) {
        fprintf(stderr, "switchboard: %s\n", err);
        return 1;
    }
    return 0;
}

typedef struct flag_value {
    const char *name; /* config key */
    const char *value;
} flag_value;

static int cmd_serve(int argc, char **argv) {
    static const struct option opts[] = {
        {"listen", required_argument, 0, 'l'}, {"data-dir", required_argument, 0, 'd'},
        {"config", required_argument, 0, 'c'}, {"access-key", required_argument, 0, 'k'},
        {"mode", required_argument, 0, 'm'},   {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    flag_value flags[8];
    size_t nflags = 0;
    const char *config_file = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'l': flags[nflags++] = (flag_value){"listen", optarg}; break;
        case 'd': flags[nflags++] = (flag_value){"data_dir", optarg}; break;
        case 'k': flags[nflags++] = (flag_value){"access_key", optarg}; break;
        case 'm': flags[nflags++] = (flag_value){"mode", optarg}; break;
        case 'c': config_file = optarg; break;
        case 'h': serve_usage(stdout); return 0;
        default: serve_usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "switchboard serve: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    static sb_server srv; /* static: large, and lives for the whole process */
    memset(&srv, 0, sizeof srv);
    if (load_config(&srv.cfg, config_file))
        return 1;
    char err[512];
    for (size_t i = 0; i < nflags; i++)
        if (sb_config_set(&srv.cfg, flags[i].name, flags[i].value, err, sizeof err) != SB_OK) {
            fprintf(stderr, "switchboard serve: %s\n", err);
            sb_config_free(&srv.cfg);
            return 2;
        }
    uv_loop_t *loop = uv_default_loop();
    if (sb_server_init(&srv, loop) != SB_OK) {
        sb_server_free(&srv);
        return 1;
    }
    int rc = sb_server_run(&srv);
    sb_server_free(&srv);
    int lrc = uv_loop_close(loop);
    if (lrc != 0) {
        fprintf(stderr, "switchboard: event loop closed with handles still open\n");
        return 1;
    }
    fprintf(stderr, "switchboard: stopped\n");
    return rc;
}

static int cmd_token(int argc, char **argv) {
    static const struct option opts[] = {
        {"access-key", required_argument, 0, 'k'}, {"aud", required_argument, 0, 'a'},
        {"user", required_argument, 0, 'u'},       {"ttl", required_argument, 0, 't'},
        {"claim", required_argument, 0, 'c'},      {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *key = NULL, *aud = NULL, *user = NULL;
    long ttl = 3600;
    json_t *payload = json_object();
    int ch, rc = 2;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'k': key = optarg; break;
        case 'a': aud = optarg; break;
        case 'u': user = optarg; break;
        case 't': {
            char *end;
            ttl = strtol(optarg, &end, 10);
            if (*end || ttl <= 0) {
                fprintf(stderr, "switchboard token: --ttl must be a positive number of seconds\n");
                goto out;
            }
            break;
        }
        case 'c': {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg) {
                fprintf(stderr, "switchboard token: --claim takes NAME=VALUE\n");
                goto out;
            }
            char *name = sb_strndup(optarg, (size_t)(eq - optarg));
            json_object_set_new(payload, name, json_string(eq + 1));
            sb_free(name);
            break;
        }
        case 'h':
            printf("usage: switchboard token --access-key KEY --aud URL [--user ID] [--ttl SECONDS] [--claim k=v ...]\n"
                   "  client tokens: --aud <endpoint>/client/?hub=<hub>\n"
                   "  REST tokens:   --aud <the request URL without its query>\n");
            rc = 0;
            goto out;
        default: goto out;
        }
    }
    if (!key || !aud) {
        fprintf(stderr, "switchboard token: --access-key and --aud are required\n");
        goto out;
    }
    time_t now = time(NULL);
    json_object_set_new(payload, "aud", json_string(aud));
    json_object_set_new(payload, "iat", json_integer(now));
    json_object_set_new(payload, "nbf", json_integer(now));
    json_object_set_new(payload, "exp", json_integer(now + ttl));
    if (user)
        json_object_set_new(payload, "nameid", json_string(user));
    char *tok = NULL;
    if (sb_jwt_sign("HS256", key, strlen(key), payload, &tok) != SB_OK) {
        fprintf(stderr, "switchboard token: signing failed\n");
        rc = 1;
        goto out;
    }
    printf("%s\n", tok);
    sb_free(tok);
    rc = 0;
out:
    json_decref(payload);
    return rc;
}

/* Ask a running service (its pid file in the data dir) for a graceful reload (SIGHUP). */
static int cmd_reload(int argc, char **argv) {
    static const struct option opts[] = {{"data-dir", required_argument, 0, 'd'},
                                         {"config", required_argument, 0, 'c'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *file = NULL;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': dir = optarg; break;
        case 'c': file = optarg; break;
        case 'h': printf("usage: switchboard reload [--data-dir DIR] [--config FILE]\n"); return 0;
        default: fprintf(stderr, "usage: switchboard reload [--data-dir DIR] [--config FILE]\n"); return 2;
        }
    }
    sb_config cfg;
    if (load_config(&cfg, file))
        return 2;
    char err[512];
    int rc = sb_server_send_reload(dir ? dir : cfg.data_dir, err, sizeof err);
    if (rc != SB_OK)
        fprintf(stderr, "switchboard reload: %s\n", err);
    sb_config_free(&cfg);
    return rc == SB_OK ? 0 : 1;
}

static int cmd_config(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "docs") == 0) {
        sb_config_markdown(stdout);
        return 0;
    }
    if (argc < 2 || strcmp(argv[1], "dump") != 0) {
        fprintf(stderr, "usage: switchboard config dump [--config FILE] [--show-secrets] | switchboard config docs\n");
        return 2;
    }
    const char *file = NULL;
    int secrets = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strcmp(argv[i], "--show-secrets") == 0)
            secrets = 1;
        else {
            fprintf(stderr, "switchboard config dump: unknown argument '%s'\n", argv[i]);
            return 2;
        }
    }
    sb_config cfg;
    if (load_config(&cfg, file))
        return 1;
    sb_config_dump(&cfg, stdout, secrets);
    sb_config_free(&cfg);
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "token") == 0)
        return cmd_token(argc - 1, argv + 1);
    if (strcmp(cmd, "config") == 0)
        return cmd_config(argc - 1, argv + 1);
    if (strcmp(cmd, "diag") == 0)
        return sb_diag_cli(argc - 1, argv + 1);
    if (strcmp(cmd, "metrics") == 0)
        return sb_metrics_cli(argc - 1, argv + 1);
    if (strcmp(cmd, "reload") == 0)
        return cmd_reload(argc - 1, argv + 1);
    if (strcmp(cmd, "logs") == 0)
        return sb_logs_cli(argc - 1, argv + 1);
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "switchboard: unknown command '%s'\n", cmd);
    usage(stderr);
    return 2;
}
