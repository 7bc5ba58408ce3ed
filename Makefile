# Switchboard - plain make.  `make run` and `make test` are the two commands a
# newcomer needs; both install what is missing first (scripts/deps.sh).
#
#   make            build build/switchboard (and the test app server)
#   make run        install deps, build, start the service on the embedded defaults
#   make test       install deps, build, unit + integration tests, then the whole
#                   suite again under ASan+UBSan, then a short fuzz smoke run
#   make bench      benchmarks side by side with nginx+nchan -> bench/RESULTS.md (bench/)
#   make bench-kql  KQL query times over 10 million rows
#   make fuzz       longer libFuzzer runs of every fuzz target
#   make format     clang-format the sources
#
# SANITIZE=address,undefined BUILD=build/asan builds an instrumented tree.

BUILD    ?= build
CC       ?= cc
SANITIZE ?=
OPT      ?= -O2
PKGS      = libuv jansson msgpack libcrypto libssl sqlite3 libcurl
CFLAGS_BASE = -std=gnu17 -Wall -Wextra -Wstrict-prototypes -Wno-unused-parameter -Werror -g -D_GNU_SOURCE \
              -Isrc $(shell pkg-config --cflags $(PKGS))
LIBS      = $(shell pkg-config --libs $(PKGS)) -lhttp_parser -lpthread -lm
ifneq ($(SANITIZE),)
  SANFLAGS = -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
  OPT      = -O1
endif
CFLAGS   += $(CFLAGS_BASE) $(OPT) $(SANFLAGS)
LDFLAGS  += $(SANFLAGS)

LIB_SRCS  := $(shell find src -name '*.c' ! -name main.c | sort)
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRCS := $(sort $(wildcard tests/tools/*.c))
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)
FUZZ_SRCS := $(sort $(wildcard fuzz/fuzz_*.c))
REPLAY_BINS := $(FUZZ_SRCS:fuzz/%.c=$(BUILD)/replay/%)
APP_SRCS  := $(sort $(wildcard appserver/*.c))
APP_OBJS  := $(APP_SRCS:%.c=$(BUILD)/obj/%.o)
DEPS      := $(LIB_OBJS:.o=.d) $(APP_OBJS:.o=.d) $(BUILD)/obj/src/main.d

SHELL := /bin/bash
.PHONY: docs-check all run test unit integration asan replay fuzz fuzz-smoke bench bench-kql bench-smoke deps format clean
all: $(BUILD)/switchboard $(BUILD)/switchboard-appserver $(BUILD)/switchboard-faults $(TOOL_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libswitchboard.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/switchboard: $(BUILD)/obj/src/main.o $(BUILD)/libswitchboard.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# The reference app server (default mode): speaks the service protocol through the project's own codec.
$(BUILD)/switchboard-appserver: $(APP_OBJS) $(BUILD)/libswitchboard.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# Variants for tests and benchmarks: the few sources whose behaviour changes are compiled again with one
# define into a tree of their own and linked ahead of the library, so the linker takes their symbols from
# these objects and never pulls the library's copies of the same files.
#
# switchboard-faults (integration tests): the socket-write fault hook (src/net/fault.h).
FAULT_SRCS := src/net/conn.c src/net/fault.c
FAULT_OBJS := $(FAULT_SRCS:%.c=$(BUILD)/obj-faults/%.o)
$(BUILD)/obj-faults/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DSB_FAULT_INJECTION -MMD -MP -c $< -o $@

$(BUILD)/switchboard-faults: $(BUILD)/obj/src/main.o $(FAULT_OBJS) $(BUILD)/libswitchboard.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

# switchboard-nometrics (make bench, case "metrics"): the per-read, per-message and per-request metric
# recorders compiled out of every caller (SB_METRICS_OFF, src/metrics/metrics.h).  The callers are found by
# name; the linker's symbol trace then proves that no object in the link still calls one.
NOMETRICS_HOT  := sb_metrics_inbound sb_metrics_outbound sb_metrics_operation
NOMETRICS_SRCS := $(shell grep -lwE 'sb_metrics_(inbound|outbound|operation)' $(filter-out src/metrics/%,$(LIB_SRCS)))
NOMETRICS_OBJS := $(NOMETRICS_SRCS:%.c=$(BUILD)/obj-nometrics/%.o)
$(BUILD)/obj-nometrics/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DSB_METRICS_OFF -MMD -MP -c $< -o $@

$(BUILD)/switchboard-nometrics: $(BUILD)/obj/src/main.o $(NOMETRICS_OBJS) $(BUILD)/libswitchboard.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS) $(NOMETRICS_HOT:%=-Wl,--trace-symbol=%) 2>$@.trace \
	    || { cat $@.trace; rm -f $@.trace; exit 1; }
	@if grep 'reference to' $@.trace; then rm -f $@ $@.trace; echo "$@: these still call a hot metric recorder"; exit 1; fi
	@rm -f $@.trace

DEPS += $(FAULT_OBJS:.o=.d) $(NOMETRICS_OBJS:.o=.d)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libswitchboard.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libswitchboard.a $(LDFLAGS) $(LIBS) -lcmocka

$(BUILD)/tools/%: tests/tools/%.c $(BUILD)/libswitchboard.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libswitchboard.a $(LDFLAGS) $(LIBS)

# Fuzz targets with a plain main (fuzz/replay.c): the committed corpora replayed by any compiler.
$(BUILD)/replay/%: fuzz/%.c fuzz/replay.c $(BUILD)/libswitchboard.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< fuzz/replay.c $(BUILD)/libswitchboard.a $(LDFLAGS) $(LIBS)

replay: $(REPLAY_BINS)
	@set -e; for b in $(REPLAY_BINS); do n=$$(basename $$b); $$b fuzz/corpus/$${n#fuzz_}; done

deps:
	@scripts/deps.sh

run:
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory all
	./$(BUILD)/switchboard serve

unit: $(UNIT_BINS)
	@scripts/run-unit.sh $(UNIT_BINS)

integration: all
	@SWITCHBOARD_BIN=$(abspath $(BUILD)/switchboard) SWITCHBOARD_APPSERVER=$(abspath $(BUILD)/switchboard-appserver) \
	    SWITCHBOARD_TOOLS=$(abspath $(BUILD)/tools) SWITCHBOARD_FAULTS_BIN=$(abspath $(BUILD)/switchboard-faults) \
	    scripts/run-integration.sh

# The whole suite again under AddressSanitizer + UndefinedBehaviorSanitizer.
asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SANITIZE=address,undefined unit replay integration

fuzz-smoke:
	@scripts/fuzz.sh smoke $(FUZZ_SRCS)

fuzz:
	@scripts/fuzz.sh long $(FUZZ_SRCS)

# docs/CONFIG.md is generated from the settings table; it must not drift.
docs-check: all
	@./$(BUILD)/switchboard config docs | diff -u <(sed -n '/^| key/,$$p' docs/CONFIG.md) - \
	    || { echo "docs/CONFIG.md is stale: regenerate it with 'switchboard config docs'"; exit 1; }

test: deps
	@$(MAKE) --no-print-directory all docs-check unit integration bench-smoke
	@$(MAKE) --no-print-directory asan
	@$(MAKE) --no-print-directory fuzz-smoke
	@echo "make test: all stages passed"

# The load generator (C, epoll) and the KQL timing tool; `make bench` writes bench/RESULTS.md.
LOADGEN_SRCS := $(sort $(wildcard bench/lg/*.c))
bench/loadgen: $(LOADGEN_SRCS) bench/lg/loadgen.h $(BUILD)/libswitchboard.a
	$(CC) $(CFLAGS) -o $@ $(LOADGEN_SRCS) $(BUILD)/libswitchboard.a $(LDFLAGS) $(LIBS)

$(BUILD)/bench/kql_bench: bench/kql_bench.c $(BUILD)/libswitchboard.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libswitchboard.a $(LDFLAGS) $(LIBS)

bench: deps
	@$(MAKE) --no-print-directory all bench/loadgen $(BUILD)/switchboard-nometrics
	@bench/run.sh

# KQL over 10 million generated rows (about 3 minutes, most of it filling the table).
bench-kql: all $(BUILD)/bench/kql_bench
	./$(BUILD)/bench/kql_bench

bench-smoke: all bench/loadgen
	@bench/run.sh --smoke

format:
	clang-format -i $$(find src tests/unit tests/tools fuzz bench -name '*.[ch]')

clean:
	rm -rf build
	rm -f bench/loadgen

-include $(DEPS)
