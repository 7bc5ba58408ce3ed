/*
 * mgmt_api.h - the ARM-shaped management API: the SignalR resource itself
 * and its diagnostic settings, at the paths Azure Resource Manager uses, so
 * the Azure SDKs (arm-monitor's diagnosticSettings client, arm-signalr's
 * update) and the `switchboard diag` CLI can drive it.
 *
 *   GET    {resourceId}?api-version=2024-03-01|2023-02-01|2022-02-01
 *   PATCH  {resourceId}                  properties.resourceLogConfiguration (log source settings),
 *                                        properties.upstream (serverless upstream templates)
 *   GET    {resourceId}/providers/Microsoft.Insights/diagnosticSettings
 *   GET|PUT|DELETE {resourceId}/providers/Microsoft.Insights/diagnosticSettings/{name}
 *   GET    {resourceId}/providers/Microsoft.Insights/diagnosticSettingsCategories[/{name}]
 *          (these with ?api-version=2021-05-01-preview|2020-05-01-preview|2017-05-01-preview)
 *
 * Every write (PUT, DELETE, PATCH), successful or not, is recorded in the
 * activity log with one of the operation names below.
 *
 * Called by: net/http.c for paths starting with /subscriptions/.
 */
#ifndef SB_MGMT_API_H
#define SB_MGMT_API_H

#include "net/conn.h"
#include "net/http_parse.h"

/* Activity-log operation names (Azure's resource-provider operation names). */
#define SB_OP_DIAG_SETTINGS_WRITE "Microsoft.Insights/diagnosticSettings/write"
#define SB_OP_DIAG_SETTINGS_DELETE "Microsoft.Insights/diagnosticSettings/delete"
#define SB_OP_SIGNALR_WRITE "Microsoft.SignalRService/SignalR/write"

/* Handle one management request; always answers (JSON, ARM error shape on failure). */
void sb_mgmt_handle(sb_conn *c, sb_http_request *req);

#endif
