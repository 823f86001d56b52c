# vhostd — vhost-user network back-end.  `make help` lists the targets.
PREFIX ?= /usr/local
SBINDIR ?= $(PREFIX)/sbin
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
UNITDIR ?= /lib/systemd/system
DESTDIR ?=

CC ?= cc
O ?= build
V ?= 0
Q := $(if $(filter 1,$(V)),,@)

WARN := -Wall -Wextra -Wshadow -Wformat=2 -Wno-unused-parameter -Wno-missing-field-initializers -Wmissing-prototypes -Wstrict-prototypes
HARDEN := -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
CFLAGS ?= -O2 -g
ifneq ($(filter 1 true,$(WERROR) $(CI)),)
WARN += -Werror
endif
ALL_CFLAGS := -std=gnu11 $(WARN) $(HARDEN) -I. -D_GNU_SOURCE -pthread $(CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS ?=
ALL_LDFLAGS := -pie -Wl,-z,relro,-z,now -pthread $(LDFLAGS) $(EXTRA_LDFLAGS)
XDP_LIBS := $(shell pkg-config --libs libxdp libbpf 2>/dev/null || echo -lxdp -lbpf)
LIBS := -lev $(XDP_LIBS) -luring

VRING_SRC := $(wildcard vring/*.c)
BACKEND_SRC := $(wildcard backends/*.c)
CONFIG_SRC := $(wildcard config/*.c)
DAEMON_SRC := $(filter-out daemon/main.c daemon/vhostctl.c,$(wildcard daemon/*.c))
CORE_OBJ := $(patsubst %.c,$(O)/%.o,$(VRING_SRC) $(BACKEND_SRC) $(CONFIG_SRC) $(DAEMON_SRC))
FAKEFE_OBJ := $(patsubst %.c,$(O)/%.o,$(wildcard tests/fakefe/*.c))

UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(O)/tests/%,$(UNIT_SRC))
INTEG_SRC := $(wildcard tests/integration/*.c)
INTEG_BIN := $(patsubst tests/integration/%.c,$(O)/tests/%,$(INTEG_SRC))

all: $(O)/vhostd $(O)/vhostctl

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC $<")
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(O)/libvhostd.a: $(CORE_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/vhostd: $(O)/daemon/main.o $(O)/libvhostd.a
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(O)/vhostctl: $(O)/daemon/vhostctl.o
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

$(O)/libfakefe.a: $(FAKEFE_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(O)/tests/test_%: $(O)/tests/unit/test_%.o $(O)/libvhostd.a $(O)/libfakefe.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

$(O)/tests/%: $(O)/tests/integration/%.o $(O)/libfakefe.a $(O)/libvhostd.a
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

# vhostd speaking another state version: an upgrade to it must be refused, the old process carrying on.
$(O)/tests/state2/%.o: daemon/%.c
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(ALL_CFLAGS) -DSTATE_MAJOR=2 -c -o $@ $<

$(O)/tests/vhostd-state2: $(O)/daemon/main.o $(O)/tests/state2/handover.o $(O)/tests/state2/state_wire.o \
		$(O)/tests/state2/handover_state.o $(O)/libvhostd.a
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

tests: $(UNIT_BIN) $(INTEG_BIN) $(O)/tests/vhostd-state2

# All tests: unit, integration, end-to-end (each says clearly when it skips and why).
# Installs missing Debian packages first (as root), so it works on a fresh machine.
check:
	$(Q)tests/install-deps.sh
	$(Q)$(MAKE) --no-print-directory all tests
	$(Q)O=$(O) tests/run-tests.sh

check-unit: all tests
	$(Q)O=$(O) tests/run-tests.sh unit

# ASan+UBSan build in build-asan/, running the same tests.
sanitize:
	$(MAKE) O=build-asan EXTRA_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all -O1" \
		EXTRA_LDFLAGS="-fsanitize=address,undefined" check

# ThreadSanitizer build in build-tsan/ for the threaded tests.
tsan:
	$(MAKE) O=build-tsan CC=clang EXTRA_CFLAGS="-fsanitize=thread -O1" EXTRA_LDFLAGS="-fsanitize=thread" \
		HARDEN_OFF=1 all tests
	O=build-tsan VHOSTD_TSAN=1 TSAN_OPTIONS="suppressions=$(CURDIR)/tests/tsan.supp halt_on_error=1 exitcode=66" \
		tests/run-tests.sh unit integration

# libFuzzer targets in build-fuzz/: one per tests/fuzz/fuzz_*.c (clang).
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=undefined
fuzz:
	$(MAKE) --no-print-directory O=build-fuzz CC=clang EXTRA_CFLAGS="-fsanitize=fuzzer-no-link $(FUZZ_SAN) -O1" build-fuzz/libvhostd.a
	set -e; for f in $(FUZZ_SRC); do n=$$(basename $$f .c); \
		clang -std=gnu11 -g -O1 -I. -D_GNU_SOURCE -pthread -fsanitize=fuzzer $(FUZZ_SAN) -o build-fuzz/$$n $$f \
			build-fuzz/libvhostd.a $(LIBS); done

# A short run of every fuzz target over its committed seed corpus (FUZZ_SECONDS each).
FUZZ_SECONDS ?= 60
fuzz-run: fuzz
	tests/fuzz/run.sh $(FUZZ_SECONDS)

deps:
	tests/install-deps.sh

compile_commands.json:
	$(MAKE) clean && bear -- $(MAKE) all tests

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

install: all
	install -D -m 0755 $(O)/vhostd $(DESTDIR)$(SBINDIR)/vhostd
	install -D -m 0755 $(O)/vhostctl $(DESTDIR)$(BINDIR)/vhostctl
	for m in man/*.[0-9]; do install -D -m 0644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m##*/}; done
	for u in systemd/*.service systemd/*.socket; do \
		sed -e 's|/usr/sbin/vhostd|$(SBINDIR)/vhostd|' -e 's|/usr/bin/vhostctl|$(BINDIR)/vhostctl|' $$u > $(O)/$${u##*/} && \
		install -D -m 0644 $(O)/$${u##*/} $(DESTDIR)$(UNITDIR)/$${u##*/}; done
	install -D -m 0644 systemd/vhostd.sysusers $(DESTDIR)$(PREFIX)/lib/sysusers.d/vhostd.conf
	install -D -m 0644 systemd/vhostd.tmpfiles $(DESTDIR)$(PREFIX)/lib/tmpfiles.d/vhostd.conf
	install -d $(DESTDIR)$(SYSCONFDIR)/vhostd
	install -D -m 0644 config/examples/*.conf -t $(DESTDIR)$(PREFIX)/share/doc/vhostd/examples
	sed 's|@SBINDIR@|$(SBINDIR)|' config/qemu/50-vhostd-net.json.in > $(O)/50-vhostd-net.json
	install -D -m 0644 $(O)/50-vhostd-net.json $(DESTDIR)$(PREFIX)/share/qemu/vhost-user/50-vhostd-net.json

clean:
	rm -rf build build-asan build-tsan build-fuzz

help:
	@echo "make            build vhostd and vhostctl into $(O)/"
	@echo "make check      all tests (unit, integration, e2e with real QEMU)"
	@echo "make sanitize   the same tests under ASan+UBSan (build-asan/)"
	@echo "make tsan       threaded tests under ThreadSanitizer (build-tsan/)"
	@echo "make fuzz       libFuzzer targets (build-fuzz/); make fuzz-run FUZZ_SECONDS=60 runs each"
	@echo "make demo       boot a demo guest through vhostd and a tap port"
	@echo "make bench      benchmarks against peers, printed as ratios"
	@echo "make deps       install Debian build and test dependencies"
	@echo "make install    PREFIX=$(PREFIX) DESTDIR=..."
	@echo "make deb        Debian package into build/deb/ (docs/packaging.md)"
	@echo "make deb-check  build, install, check and purge the package (root)"
	@echo "V=1             show commands"

.PHONY: all tests check check-unit sanitize tsan fuzz fuzz-run deps format format-check install clean help compile_commands.json
.SECONDARY:
-include $(shell find $(O) -name '*.d' -type f 2>/dev/null)

# Boot a demo guest through vhostd and a tap port, and show what happened.
demo:
	tests/e2e/demo.sh

# Benchmarks against peers measured in the same run (see bench/README.md).
bench: all
	bench/run.sh

.PHONY: demo bench

# Debian package (docs/packaging.md), built from a copy of the tracked and
# untracked-but-not-ignored files in build/deb/src, so that neither this tree
# (debian/ leftovers, a "make clean") nor its parent directory (where
# dpkg-buildpackage writes the .deb) is touched. Leaves build/deb/*.deb,
# .buildinfo and .changes; the copy is removed.
deb:
	@git rev-parse --is-inside-work-tree >/dev/null 2>&1 || \
		{ echo "make deb: needs a git checkout; run dpkg-buildpackage -b -us -uc instead"; exit 1; }
	rm -rf build/deb && mkdir -p build/deb/src
	git ls-files -z -co --exclude-standard | tar --null -T - --ignore-failed-read -cf - | tar -xf - -C build/deb/src
	cd build/deb/src && dpkg-buildpackage -b -us -uc
	rm -rf build/deb/src
	@ls -1 build/deb/*.deb

# Build, install, check and purge the package (root; tests/package/deb_check.sh).
deb-check:
	tests/package/deb_check.sh

.PHONY: deb deb-check
