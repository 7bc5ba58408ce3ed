/*
 * fuzz_diag_settings.c - libFuzzer target for src/diag/settings.c: the ARM
 * PUT body parser, the resourceLogConfiguration PATCH parser and the loader
 * of the persisted document, all of which read outside input (HTTP bodies,
 * a file an operator may edit).
 *
 * One input is parsed as JSON and handed to all three; the raw bytes also go
 * through the name check.  Invariants (abort() so libFuzzer keeps the input):
 *  - a refusal has a non-empty, valid UTF-8 message and leaves nothing owned;
 *  - an accepted setting has a destination, and what it renders is accepted
 *    again and renders identically (GET returns what was PUT);
 *  - a loaded document has at most SB_DIAG_MAX_SETTINGS settings and its
 *    serialization loads back to the same document;
 *  - a refused PATCH changes nothing.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "diag/settings.h"
#include "util/error.h"
#include "util/utf8.h"

#define RID "/subscriptions/s/resourceGroups/rg/providers/Microsoft.SignalRService/SignalR/fuzz"

static const sb_diag_destinations dst = {"local,archive", "local"};

static void check_message(const char *err) {
    if (!err[0] || !sb_utf8_valid(err, strlen(err)))
        abort();
}

static void fuzz_put(json_t *body) {
    sb_diag_setting d, again;
    char err[512] = "";
    if (sb_diag_setting_from_arm("fuzz", body, &dst, &d, err, sizeof err) != SB_OK) {
        check_message(err);
        if (d.storage_account_id || d.workspace_id || d.logs_json || d.metrics_json || d.destination_type)
            abort();
        return;
    }
    if (!d.storage_account_id && !d.workspace_id)
        abort();
    json_t *arm = sb_diag_setting_to_arm(&d, RID);
    if (sb_diag_setting_from_arm(d.name, arm, &dst, &again, err, sizeof err) != SB_OK)
        abort();
    json_t *arm2 = sb_diag_setting_to_arm(&again, RID);
    if (!json_equal(arm, arm2) || again.logs_all != d.logs_all || again.logs_audit != d.logs_audit ||
        again.metrics != d.metrics)
        abort();
    json_decref(arm);
    json_decref(arm2);
    sb_diag_setting_free(&d);
    sb_diag_setting_free(&again);
}

static void fuzz_document(json_t *doc) {
    sb_diag_settings s, back;
    char err[512] = "";
    if (sb_diag_settings_load_json(&s, doc, err, sizeof err) != SB_OK) {
        check_message(err);
        if (s.n)
            abort();
        return;
    }
    if (s.n > SB_DIAG_MAX_SETTINGS)
        abort();
    json_t *out = sb_diag_settings_to_json(&s);
    if (sb_diag_settings_load_json(&back, out, err, sizeof err) != SB_OK)
        abort();
    json_t *out2 = sb_diag_settings_to_json(&back);
    if (!json_equal(out, out2) || back.n != s.n ||
        sb_diag_settings_collecting(&back) != sb_diag_settings_collecting(&s) ||
        sb_diag_settings_metrics(&back) != sb_diag_settings_metrics(&s))
        abort();
    json_decref(out);
    json_decref(out2);
    sb_diag_settings_free(&s);
    sb_diag_settings_free(&back);
}

static void fuzz_patch(json_t *doc) {
    sb_diag_settings s;
    char err[512] = "";
    sb_diag_settings_init(&s);
    s.type_enabled[SB_LOGT_MESSAGING] = 0;
    json_t *cfg = json_object_get(json_object_get(doc, "properties"), "resourceLogConfiguration");
    if (sb_diag_log_config_from_arm(&s, cfg ? cfg : doc, err, sizeof err) != SB_OK) {
        check_message(err);
        if (s.type_enabled[SB_LOGT_CONNECTIVITY] != 1 || s.type_enabled[SB_LOGT_MESSAGING] != 0 ||
            s.type_enabled[SB_LOGT_HTTP] != 1)
            abort();
    }
    json_decref(sb_diag_log_config_to_arm(&s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[512] = "";
    if (sb_diag_setting_name_check((const char *)data, size, err, sizeof err) != SB_OK)
        check_message(err);
    json_t *j = json_loadb((const char *)data, size, 0, NULL);
    if (!j)
        return 0;
    fuzz_put(j);
    fuzz_document(j);
    fuzz_patch(j);
    json_decref(j);
    return 0;
}
