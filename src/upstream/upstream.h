/*
 * upstream.h - serverless upstream settings as values: the ordered template
 * list, Azure's pattern rules, URL expansion, the X-ASRS-* header values
 * (signature, claims) and the persisted/ARM JSON shape.
 *
 * Pure: no libuv, no libcurl, no sb_server.  The only I/O is loading and
 * saving the persisted document, both given a path (start-up reads it before
 * the loop runs; the save runs on the threadpool, see dispatch.c).  Unit-tested
 * by tests/unit/test_upstream.c; the JSON parser is fuzzed by
 * fuzz/fuzz_upstream.c because it reads management-API bodies and a file an
 * operator may edit.
 *
 * Rules (Azure's, as its emulator implements them):
 *  - templates are tried in order; the first whose three patterns match wins;
 *  - a pattern is a comma-separated list of names, each trimmed; an item `*`
 *    matches anything; otherwise a name matches exactly.  Hub names compare
 *    ignoring case (this service keeps hubs lower-cased and looks them up
 *    case-insensitively); categories and events (invocation targets) compare
 *    exactly.  An absent or blank pattern means `*`;
 *  - the blocking `connect` event is matched by an event item `connect`
 *    only, unless star_includes_connect (config upstream_connect_event=on):
 *    Azure SignalR's own events are connected/disconnected, and a service
 *    that suddenly held every handshake on an upstream would break existing
 *    `*` setups;
 *  - {hub}, {category} and {event} in the URL template are replaced by their
 *    values escaped like .NET's Uri.EscapeDataString (everything outside
 *    RFC 3986 unreserved characters is %XX).
 *
 * Ownership: settings own their strings; *_free releases them.
 */
#ifndef SB_UPSTREAM_H
#define SB_UPSTREAM_H

#include <jansson.h>
#include <stddef.h>

#include "util/buf.h"

#define SB_UPSTREAM_MAX_TEMPLATES 64
#define SB_UPSTREAM_MAX_URL_BYTES 2048
#define SB_UPSTREAM_MAX_PATTERN_BYTES 1024

/* Categories and events, as Azure names them. */
#define SB_UPSTREAM_CATEGORY_CONNECTIONS "connections"
#define SB_UPSTREAM_CATEGORY_MESSAGES "messages"
#define SB_UPSTREAM_EVENT_CONNECT "connect"
#define SB_UPSTREAM_EVENT_CONNECTED "connected"
#define SB_UPSTREAM_EVENT_DISCONNECTED "disconnected"

/* Request headers. */
#define SB_UPSTREAM_HEADER_CONNECTION_ID "X-ASRS-Connection-Id"
#define SB_UPSTREAM_HEADER_USER_ID "X-ASRS-User-Id"
#define SB_UPSTREAM_HEADER_HUB "X-ASRS-Hub"
#define SB_UPSTREAM_HEADER_CATEGORY "X-ASRS-Category"
#define SB_UPSTREAM_HEADER_EVENT "X-ASRS-Event"
#define SB_UPSTREAM_HEADER_SIGNATURE "X-ASRS-Signature"
#define SB_UPSTREAM_HEADER_USER_CLAIMS "X-ASRS-User-Claims"
#define SB_UPSTREAM_HEADER_CLIENT_QUERY "X-ASRS-Client-Query"

/* Failure texts a client sees, spelled as the emulator writes them (printf formats where noted). */
#define SB_UPSTREAM_FMT_STATUS "Invocation failed, status code %ld"
#define SB_UPSTREAM_FMT_ERROR "Invocation failed, error: %s."
#define SB_UPSTREAM_TEXT_TOO_LARGE "Invocation failed, response too large."
#define SB_UPSTREAM_TEXT_CANCELLED "Invocation failed, response cancelled."
/* chosen here: a connect the upstream refused (401/403); %ld status, then ": <body>" when it has one */
#define SB_UPSTREAM_FMT_REJECTED "Connection rejected by the upstream with status code %ld"

typedef struct sb_upstream_template {
    char *url_template;
    char *hub_pattern; /* never NULL ("*" by default) */
    char *category_pattern;
    char *event_pattern;
} sb_upstream_template;

typedef struct sb_upstream_settings {
    sb_upstream_template *v;
    size_t n;
} sb_upstream_settings;

void sb_upstream_settings_init(sb_upstream_settings *s);
void sb_upstream_settings_free(sb_upstream_settings *s);
/* dst is (re)initialised. */
void sb_upstream_settings_copy(sb_upstream_settings *dst, const sb_upstream_settings *src);

/* The one-rule short form (config upstream_url_template): every hub, category and event.
 * An empty url leaves s empty.  SB_EINVAL with a message if url is not a valid template. */
int sb_upstream_settings_single(sb_upstream_settings *s, const char *url, char *err, size_t errlen);

/*
 * The ARM property properties.upstream, which is also the persisted document:
 *   {"templates":[{"urlTemplate":"...","hubPattern":"*","categoryPattern":"*","eventPattern":"*",
 *                  "auth":{"type":"None"}}]}
 * Property names compare ignoring case (the emulator's settings file is PascalCase).  Absent or
 * null "templates" is an empty list.  Only auth type None is accepted (there is no managed
 * identity to get tokens from).  On error returns SB_EINVAL, err names the offending property and
 * s is left empty.  s is (re)initialised.
 */
int sb_upstream_settings_from_json(sb_upstream_settings *s, json_t *upstream, char *err, size_t errlen);
json_t *sb_upstream_settings_to_json(const sb_upstream_settings *s);

/* Load the persisted document.  SB_ENOENT (s empty) when the file does not exist; SB_EINVAL /
 * -errno with a message otherwise. */
int sb_upstream_settings_load(sb_upstream_settings *s, const char *path, char *err, size_t errlen);
/* Write text to path durably (temp file, fsync, rename, fsync of the directory).  Any thread. */
int sb_upstream_settings_save_text(const char *path, const char *text);

/* 1 when a URL template is acceptable: an absolute http(s) URL with a host, no spaces or control
 * characters, at most SB_UPSTREAM_MAX_URL_BYTES. */
int sb_upstream_url_template_valid(const char *url);

/* One pattern against one value (rules above); star_ok 0 makes `*` items match nothing. */
int sb_upstream_pattern_match(const char *pattern, const char *value, int ignore_case, int star_ok);
/* The first template matching the event, or NULL. */
const sb_upstream_template *sb_upstream_match(const sb_upstream_settings *s, const char *hub,
                                              const char *category, const char *event,
                                              int star_includes_connect);

/* Append s escaped like Uri.EscapeDataString. */
void sb_upstream_escape(const char *s, sb_buf *out);
/* Append the URL: url_template with {hub}, {category}, {event} replaced by escaped values. */
void sb_upstream_expand(const char *url_template, const char *hub, const char *category, const char *event,
                        sb_buf *out);

/* Append the X-ASRS-Signature value: "sha256=<HEX>" per key, comma-separated, where HEX is the
 * upper-case HMAC-SHA256 of the connection id keyed with the UTF-8 bytes of the access key. */
void sb_upstream_signature(const char *const *keys, size_t nkeys, const char *connection_id, sb_buf *out);

/* Append the X-ASRS-User-Claims value: every claim as "type: value" joined with ", " (array claims
 * once per element; "asrs.u." prefixes removed; asrs.s.* and the JWT system claims aud, exp, iat,
 * nbf, iss, actort, acr, azp, c_hash, jti, nonce left out).  Appends nothing when none remain. */
void sb_upstream_claims_header(json_t *claims, sb_buf *out);

/* Append s as a header value: control characters (CR, LF, ...) become spaces, so no value can end
 * a header line early. */
void sb_upstream_header_value(const char *s, sb_buf *out);

#endif
