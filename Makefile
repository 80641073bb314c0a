# shortd build. `make run` builds and starts the service; `make test` runs
# every test. Dependencies are Debian packages, checked (and installed when
# root) by scripts/deps.sh.

CC      ?= cc
PKGS    := libuv sqlite3 jansson libcurl libidn2 libmaxminddb geoip libqrencode libpng zlib libcrypto libpq icu-uc icu-i18n
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

OPT     ?= -O2
WARN    := -Wall -Wextra -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
	   -Wpointer-arith -Wvla -Wconversion
CFLAGS  ?= $(OPT) -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -pthread -Isrc -I$(BUILD)/gen $(PKG_CFLAGS)
LDLIBS  = $(PKG_LIBS) -pthread

ifeq ($(WERROR),1)
ALL_CFLAGS += -Werror
endif
# make SAN=1: AddressSanitizer and UndefinedBehaviorSanitizer (with fault
# injection compiled in, so the fault tests also run sanitized).
ifeq ($(SAN),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined \
	      -DSHORTD_FAULTS
LDFLAGS += -fsanitize=address,undefined
BUILD   ?= build/san
endif
# make FAULTS=1: a test build that fails writes, syncs, commits and
# allocations on demand (src/core/fault.h).
ifeq ($(FAULTS),1)
ALL_CFLAGS += -DSHORTD_FAULTS
BUILD   ?= build/fault
endif
# make DELAYED_READS=1: a test build whose every store read through a
# worker's loop is answered later (SHORTD_READ_DELAY_US, default 1000),
# as a network store would, so that each suspended path runs in every
# test (store/sqlite_reader.c). Fault injection is compiled in too.
ifeq ($(DELAYED_READS),1)
ALL_CFLAGS += -DSHORTD_DELAYED_READS -DSHORTD_FAULTS
BUILD   ?= build/delayed
endif
BUILD   ?= build

SRCS    := $(sort $(wildcard src/*/*.c))
OBJS    := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
MAIN_OBJ := $(BUILD)/obj/main.o
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
BIN     := shortd

PYTEST  := /usr/bin/python3 -m pytest

.PHONY: all run deps test unit blackbox blackbox-delayed sanitize soak clean bench bench-quick bench-compare bench-smoke fuzz \
	fuzz-replay install uninstall deb ui-screenshots

all: $(BIN) $(BUILD)/shortd.1

deps:
	@scripts/deps.sh build

# Generated headers are kept: deleted as intermediates after a first build,
# they would make the next make (whose .d files name them) rebuild everything.
.PRECIOUS: $(BUILD)/gen/%.sql.h $(BUILD)/gen/%.txt.h $(BUILD)/gen/ui_%.h

# The web UI's files and Chart.js (Debian's libjs-chart.js), as C string
# literals ('?' escaped: no trigraphs), for src/app/ui.c.
CHART_JS := /usr/share/javascript/chart.js/chart.min.js
UI_GEN := $(BUILD)/gen/ui_index.html.h $(BUILD)/gen/ui_app.js.h $(BUILD)/gen/ui_app.css.h \
	$(BUILD)/gen/chart.min.js.h
EMBED = sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/?/\\?/g' -e 's/^/"/' -e 's/$$/\\n"/'

$(BUILD)/gen/ui_%.h: ui/%
	@mkdir -p $(@D)
	$(EMBED) $< > $@

$(BUILD)/gen/chart.min.js.h: $(CHART_JS)
	@mkdir -p $(@D)
	$(EMBED) $< > $@

$(BUILD)/obj/app/ui.o: $(UI_GEN)

$(BUILD)/gen/%.sql.h: src/store/%.sql
	@mkdir -p $(@D)
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $< > $@

$(BUILD)/gen/%.txt.h: src/link/%.txt
	@mkdir -p $(@D)
	sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' $< > $@

$(BUILD)/obj/%.o: src/%.c $(BUILD)/gen/schema_sqlite.sql.h $(BUILD)/gen/schema_clicks.sql.h \
		$(BUILD)/gen/schema_pg.sql.h $(BUILD)/gen/lookalike_domains.txt.h
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/shortd: $(OBJS) $(MAIN_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# A new file renamed over the old one: a shortd running from it keeps its
# own (a copy over it would fail: "Text file busy").
$(BIN): $(BUILD)/shortd
	cp $< $@.new && mv -f $@.new $@

# shortd(1), written by the binary from its command and option tables.
$(BUILD)/shortd.1: $(BUILD)/shortd
	$< --help-man > $@.new && mv -f $@.new $@

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary, shortd(1), the
# systemd unit (its paths filled in), /etc/shortd/shortd.conf (unless one is
# there), and the docs with the proxy examples. make uninstall removes them,
# and the configuration only if it is still the example.
PREFIX     ?= /usr/local
BINDIR     := $(PREFIX)/bin
MANDIR     := $(PREFIX)/share/man/man1
DOCDIR     := $(PREFIX)/share/doc/shortd
UNITDIR    ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
SYSCONFDIR ?= /etc

install: $(BUILD)/shortd $(BUILD)/shortd.1
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/shortd
	install -m 755 $(BUILD)/shortd $(DESTDIR)$(BINDIR)/shortd
	gzip -9n < $(BUILD)/shortd.1 > $(DESTDIR)$(MANDIR)/shortd.1.gz
	chmod 644 $(DESTDIR)$(MANDIR)/shortd.1.gz
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|/etc/shortd/|$(SYSCONFDIR)/shortd/|g' \
		deploy/shortd.service > $(DESTDIR)$(UNITDIR)/shortd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/shortd.service
	install -m 644 README.md docs/*.md deploy/shortd.conf.example deploy/nginx-site.conf \
		deploy/haproxy.cfg $(DESTDIR)$(DOCDIR)/
	test -e $(DESTDIR)$(SYSCONFDIR)/shortd/shortd.conf || \
		install -m 644 deploy/shortd.conf.example $(DESTDIR)$(SYSCONFDIR)/shortd/shortd.conf

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/shortd $(DESTDIR)$(MANDIR)/shortd.1.gz \
		$(DESTDIR)$(UNITDIR)/shortd.service
	rm -rf $(DESTDIR)$(DOCDIR)
	if cmp -s deploy/shortd.conf.example $(DESTDIR)$(SYSCONFDIR)/shortd/shortd.conf; then \
		rm -f $(DESTDIR)$(SYSCONFDIR)/shortd/shortd.conf; \
		rmdir $(DESTDIR)$(SYSCONFDIR)/shortd 2>/dev/null || true; \
	else echo "kept $(DESTDIR)$(SYSCONFDIR)/shortd/shortd.conf (changed since install)"; fi

# make deb: build/shortd_VERSION_ARCH.deb with Debian's own tools, from
# debian/ (control, changelog, copyright, maintainer scripts): a binary
# built with dpkg-buildflags' hardening flags, installed with PREFIX=/usr,
# its dependencies from dpkg-shlibdeps, its control file from
# dpkg-gencontrol; then lintian.
DEB_VERSION = $(shell dpkg-parsechangelog -S Version 2>/dev/null)
DEB_ARCH    = $(shell dpkg-architecture -qDEB_HOST_ARCH 2>/dev/null)
DEB         = build/shortd_$(DEB_VERSION)_$(DEB_ARCH).deb

deb:
	@test "$(DEB_VERSION)" = "$$(sed -n 's/.*SHORTD_VERSION "\(.*\)"/\1/p' src/version.h)-1" || \
		{ echo "debian/changelog's version is not src/version.h's" >&2; exit 1; }
	$(MAKE) --no-print-directory BUILD=build/deb-bin \
		CFLAGS="$$(dpkg-buildflags --get CFLAGS) $$(dpkg-buildflags --get CPPFLAGS)" \
		LDFLAGS="$$(dpkg-buildflags --get LDFLAGS) -Wl,-z,now" build/deb-bin/shortd build/deb-bin/shortd.1
	rm -rf build/deb && install -d build/deb/root/DEBIAN
	$(MAKE) --no-print-directory BUILD=build/deb-bin PREFIX=/usr DESTDIR=$(CURDIR)/build/deb/root install
	install -m 644 debian/copyright build/deb/root/usr/share/doc/shortd/copyright
	gzip -9n < debian/changelog > build/deb/root/usr/share/doc/shortd/changelog.Debian.gz
	chmod 644 build/deb/root/usr/share/doc/shortd/changelog.Debian.gz
	install -d build/deb/root/usr/share/lintian/overrides
	install -m 644 debian/lintian-overrides build/deb/root/usr/share/lintian/overrides/shortd
	strip --remove-section=.comment --remove-section=.note --strip-unneeded \
		build/deb/root/usr/bin/shortd
	install -m 755 debian/postinst debian/prerm debian/postrm build/deb/root/DEBIAN/
	echo /etc/shortd/shortd.conf > build/deb/root/DEBIAN/conffiles
	echo "misc:Depends=init-system-helpers (>= 1.54~)" > build/deb/substvars
	dpkg-shlibdeps -Tbuild/deb/substvars build/deb/root/usr/bin/shortd
	dpkg-gencontrol -pshortd -fbuild/deb/files -Tbuild/deb/substvars -Pbuild/deb/root
	cd build/deb/root && find usr lib -type f | LC_ALL=C sort | xargs md5sum > DEBIAN/md5sums
	fakeroot dpkg-deb --root-owner-group -Zxz --build build/deb/root $(DEB)
	lintian --fail-on error,warning $(DEB)

$(BUILD)/tests/%: tests/unit/%.c $(OBJS)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# libFuzzer harnesses (Debian's clang), with ASan and UBSan.
FUZZ_CC    ?= clang
FUZZ_FLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -Isrc -fsanitize=fuzzer,address,undefined \
	      -fno-sanitize-recover=undefined
FUZZ_TIME  ?= 300

$(BUILD)/fuzz/fuzz_http_parser: tests/fuzz/fuzz_http_parser.c src/http/http_parser.c src/http/http_parser.h
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) tests/fuzz/fuzz_http_parser.c src/http/http_parser.c -o $@

# what link.c needs: its look-alike checks, the domain lines they read
LINK_SRCS := src/link/link.c src/link/lookalike.c src/link/blocklist.c src/core/util.c
LINK_DEPS := $(LINK_SRCS) src/link/link.h src/link/lookalike.h $(BUILD)/gen/lookalike_domains.txt.h

$(BUILD)/fuzz/fuzz_url: tests/fuzz/fuzz_url.c $(LINK_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -I$(BUILD)/gen $(PKG_CFLAGS) tests/fuzz/fuzz_url.c $(LINK_SRCS) \
		-o $@ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_json_body: tests/fuzz/fuzz_json_body.c src/link/link_input.c src/link/link_input.h \
		$(LINK_DEPS)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -I$(BUILD)/gen $(PKG_CFLAGS) tests/fuzz/fuzz_json_body.c \
		src/link/link_input.c $(LINK_SRCS) -o $@ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_code: tests/fuzz/fuzz_code.c $(LINK_DEPS) src/core/idgen.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -I$(BUILD)/gen $(PKG_CFLAGS) tests/fuzz/fuzz_code.c $(LINK_SRCS) \
		src/core/idgen.c -o $@ $(PKG_LIBS)

FUZZERS := http_parser url json_body code

# Replays every committed input once (CI does this; long runs are `make fuzz`).
fuzz-replay: $(FUZZERS:%=$(BUILD)/fuzz/fuzz_%)
	@for f in $(FUZZERS); do \
		$(BUILD)/fuzz/fuzz_$$f -runs=0 -artifact_prefix=$(BUILD)/fuzz/ tests/fuzz/corpus/$$f \
			> $(BUILD)/fuzz/replay-$$f.log 2>&1 \
			|| { cat $(BUILD)/fuzz/replay-$$f.log; exit 1; }; \
		echo "fuzz $$f: $$(grep -E '^Done' $(BUILD)/fuzz/replay-$$f.log)"; \
	done

# Fuzzes each target for FUZZ_TIME seconds; new inputs go to
# build/fuzz/corpus/TARGET (copy the ones worth keeping, minimised with
# -merge=1, into tests/fuzz/corpus/TARGET).
fuzz: $(FUZZERS:%=$(BUILD)/fuzz/fuzz_%)
	@for f in $(FUZZERS); do \
		mkdir -p $(BUILD)/fuzz/corpus/$$f; \
		$(BUILD)/fuzz/fuzz_$$f -max_total_time=$(FUZZ_TIME) -max_len=4096 -artifact_prefix=$(BUILD)/fuzz/ \
			$(BUILD)/fuzz/corpus/$$f tests/fuzz/corpus/$$f > $(BUILD)/fuzz/fuzz-$$f.log 2>&1 \
			|| { tail -40 $(BUILD)/fuzz/fuzz-$$f.log; exit 1; }; \
		echo "fuzz $$f: $$(tail -1 $(BUILD)/fuzz/fuzz-$$f.log)"; \
	done

# Builds and starts shortd: on 127.0.0.1:8080 with its data in ./data,
# unless LISTEN=, DATA=, SHORTD_* variables or a --config file say otherwise.
run: deps
	@$(MAKE) --no-print-directory $(BIN)
	./$(BIN)$(if $(LISTEN), --listen $(LISTEN))$(if $(DATA), --data $(DATA))

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

blackbox: $(BIN)
	@$(MAKE) --no-print-directory FAULTS=1 build/fault/shortd
	SHORTD_BIN=$(CURDIR)/$(BIN) SHORTD_FAULT_BIN=$(CURDIR)/build/fault/shortd $(PYTEST) -q -p no:cacheprovider tests/blackbox

# The black-box suite runs each test on SQLite and on PostgreSQL (a real
# primary and replica the suite starts: tests/blackbox/pgcluster.py);
# SHORTD_BACKENDS=sqlite or pg narrows it. Then again on the DELAYED_READS
# build (SQLite's reads answered late, as PostgreSQL's are).
blackbox-delayed:
	@$(MAKE) --no-print-directory DELAYED_READS=1 build/delayed/shortd
	SHORTD_BACKENDS=sqlite SHORTD_DELAYED=1 SHORTD_BIN=$(CURDIR)/build/delayed/shortd SHORTD_FAULT_BIN=$(CURDIR)/build/delayed/shortd $(PYTEST) -q -p no:cacheprovider tests/blackbox

# The whole suite: warnings are errors; unit tests, fuzz corpora, the
# benchmark harness at tiny sizes, black-box tests, then all of it again
# under ASan, UBSan and LSan.
test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory WERROR=1 $(BIN) $(UNIT_BINS)
	@$(MAKE) --no-print-directory WERROR=1 unit
	@$(MAKE) --no-print-directory fuzz-replay
	@$(MAKE) --no-print-directory bench-smoke
	@$(MAKE) --no-print-directory WERROR=1 blackbox
	@$(MAKE) --no-print-directory WERROR=1 blackbox-delayed
	@$(MAKE) --no-print-directory sanitize

# Unit and black-box tests against sanitized builds (in build/san), then
# the black-box suite against a sanitized DELAYED_READS build (in
# build/san-delayed), where every read waits on the loop: the suspended
# paths under ASan. Any report aborts the process or, in a server log,
# fails the test.
SAN_ENV := ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1
sanitize:
	@$(MAKE) --no-print-directory SAN=1 WERROR=1 build/san/shortd
	@$(SAN_ENV) $(MAKE) --no-print-directory SAN=1 WERROR=1 unit
	$(SAN_ENV) SHORTD_SANITIZED=1 SHORTD_BIN=$(CURDIR)/build/san/shortd SHORTD_FAULT_BIN=$(CURDIR)/build/san/shortd $(PYTEST) -q -p no:cacheprovider tests/blackbox
	@$(MAKE) --no-print-directory SAN=1 DELAYED_READS=1 BUILD=build/san-delayed WERROR=1 build/san-delayed/shortd
	$(SAN_ENV) SHORTD_BACKENDS=sqlite SHORTD_SANITIZED=1 SHORTD_DELAYED=1 SHORTD_BIN=$(CURDIR)/build/san-delayed/shortd SHORTD_FAULT_BIN=$(CURDIR)/build/san-delayed/shortd $(PYTEST) -q -p no:cacheprovider tests/blackbox

# Long reliability runs (not part of make test): 1000 kill -9 cycles.
soak: $(BIN)
	SHORTD_CRASH_CYCLES=$${SHORTD_CRASH_CYCLES:-1000} SHORTD_BIN=$(CURDIR)/$(BIN) \
		$(PYTEST) -q -s -p no:cacheprovider tests/blackbox/test_t0510_crash_loop.py

# Benchmarks (bench/bench.py; docs/performance.md): every scenario against
# its baseline, alternated, medians; results in bench/results/. BENCH_ARGS
# passes options, e.g. BENCH_ARGS="--rounds 7 --scenarios 1,4".
BENCH_ARGS ?=
bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BIN)
	/usr/bin/python3 bench/bench.py $(BENCH_ARGS)

# Scenarios 1 (shortd against nginx) and 8 (analytics and limits on/off).
bench-quick:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BIN)
	/usr/bin/python3 bench/bench.py --scenarios 1,8 $(BENCH_ARGS)

# Scenarios 1, 3 and 5 beside the binary of commit BASE (default: HEAD~1),
# built in a worktree under build/base, alternated in the same run:
# make bench-compare BASE=abc123
BASE ?= HEAD~1
bench-compare:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BIN)
	rm -rf build/base && git worktree prune && git worktree add --detach build/base $(BASE)
	$(MAKE) --no-print-directory -C build/base shortd
	/usr/bin/python3 bench/bench.py --scenarios 1,3,5 --baseline build/base/shortd \
		--baseline-name "$$(git rev-parse --short $(BASE))" $(BENCH_ARGS)
	git worktree remove --force build/base

# The screenshots of docs/ui.md, one a page, taken by the browser tests.
ui-screenshots: $(BIN)
	@mkdir -p docs/ui
	SHORTD_UI_DOCS=$(CURDIR)/docs/ui SHORTD_BACKENDS=sqlite SHORTD_BIN=$(CURDIR)/$(BIN) \
		$(PYTEST) -q -p no:cacheprovider tests/blackbox/test_t0860_ui.py

# Every scenario for a second at tiny sizes, so the harness cannot rot.
bench-smoke: $(BIN)
	/usr/bin/python3 bench/bench.py --smoke --out $(BUILD)/bench-smoke

clean:
	rm -rf build $(BIN)

-include $(OBJS:.o=.d) $(MAIN_OBJ:.o=.d)
