/*
 * prometheus.h - GET /metrics in the Prometheus text exposition format.
 * Gauges and counters are read at scrape time from where they already live
 * (router counts, the log pipeline's atomic stats); nothing is counted here.
 */
#ifndef SB_PROMETHEUS_H
#define SB_PROMETHEUS_H

#include "net/conn.h"

void sb_prometheus_handle(sb_conn *c, sb_http_request *req);

#endif
