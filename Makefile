# baleine: build, test and demo on a local copy of the R2Lab testbed.
# The two commands for a fresh machine (as root): `make demo` and `make test`.

N ?= 4
CARGO ?= cargo
TESTBED := tests/testbed/testbed
export BALEINE_TESTBED_DIR ?= /tmp/baleine-testbed

.PHONY: all build deps lint man test test-unit test-unit-on-a-gateway fuzz chaos testbed-up testbed-down demo install uninstall bench bench-scale

all: build

## PROFILE=dev builds and installs the debug binaries (the tests do).
PROFILE ?= release
BUILD_DIR = $(or $(CARGO_TARGET_DIR),target)/$(if $(filter dev,$(PROFILE)),debug,$(PROFILE))
TOOLS := baleine baleine-deploy baleine-destroy baleine-save baleine-list baleine-ps baleine-exec baleine-logs baleine-cp baleine-rmi baleine-build

build:
	$(CARGO) build --locked --profile $(PROFILE)

## Debian packages and the rhubarbe venv, installed only when missing (root).
deps:
	tests/testbed/deps

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --locked --all-targets -- -D warnings

## Regenerate man/ and completions/ from the --help definitions (commit them).
man:
	BALEINE_REGENERATE=1 $(CARGO) test --locked --test docs committed_man_pages_and_completions_match_their_source

testbed-up: deps
	$(TESTBED) up $(N)

testbed-down:
	$(TESTBED) down

## Unit tests and the hermetic CLI tests (tests/cli.rs): no testbed, no root
## services, no network but loopback.
HERMETIC_TESTS := cli properties hostile gateway
TESTBED_TESTS := $(filter-out $(HERMETIC_TESTS),$(basename $(notdir $(wildcard tests/*.rs))))
## The programs the hermetic tests run (the shells of the quoting proofs, a
## pty): said up front, not as a test failure deep in the run.
HERMETIC_PROGRAMS := sh dash bash zsh busybox script pgrep prlimit
test-unit:
	@missing=; for p in $(HERMETIC_PROGRAMS); do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	  [ -z "$$missing" ] || { echo "make test-unit needs:$$missing (make deps installs them, as root)" >&2; exit 2; }
	$(CARGO) test --workspace --locked --lib --bins $(addprefix --test ,$(HERMETIC_TESTS))

## The hermetic tests again as on an R2Lab gateway (fit01 resolves, the ssh
## configurations name the nodes): they must not notice (root: a mount
## namespace of their own, nothing of the machine changes).
test-unit-on-a-gateway:
	tests/testbed/as-on-a-gateway $(CARGO) test --workspace --locked --lib --bins $(addprefix --test ,$(HERMETIC_TESTS))

## Lint, the hermetic tests, then the integration tests against one shared
## testbed, which is torn down afterwards whatever the outcome
## (KEEP_TESTBED=1 keeps it up).
test: deps lint test-unit test-unit-on-a-gateway
	$(CARGO) build --workspace --locked --all-targets
	$(TESTBED) up $(N)
	status=0; $(CARGO) test --workspace --locked --no-fail-fast $(addprefix --test ,$(TESTBED_TESTS)) || status=$$?; \
	  [ -n "$(KEEP_TESTBED)" ] || $(TESTBED) down; exit $$status

## Every cargo-fuzz target for FUZZ_SECONDS each (default 60), from fuzz/seeds;
## prints targets x seconds x executions and crashes (fuzz/results/latest.md).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run

## Chaos (tests/chaos.rs) on its own testbed of CHAOS_NODES nodes: CHAOS_ROUNDS
## rounds of faults (CHAOS_SEED=N replays a run); totals in tests/chaos/results/.
CHAOS_NODES ?= 37
CHAOS_ROUNDS ?= 30
chaos: deps
	$(CARGO) build --workspace --locked --all-targets
	$(TESTBED) up $(CHAOS_NODES)
	status=0; CHAOS_ROUNDS=$(CHAOS_ROUNDS) CHAOS_RESULTS=$(CURDIR)/tests/chaos/results \
	  $(CARGO) test --locked --test chaos -- --nocapture || status=$$?; \
	  $(TESTBED) down; exit $$status

## The deploy benchmark (not part of test): BENCH_N=4 for a quick run.
BENCH_N ?= 37
bench: deps
	tests/bench/bench $(BENCH_N)

## The fan-out alone, 37 to 1000 simulated nodes (one sshd in a private
## network namespace, a docker stand-in): SCALE_SIZES="37 100" for a quick run.
bench-scale: deps
	tests/bench/scale

## deps, build, a 4-node testbed, and the main job on it.
demo: deps build
	$(TESTBED) up $(N)
	tests/demo

## rdsh on this node, as root (rdsh/install-node): /bin/rdsh listed in
## /etc/shells, the container user with rdsh as its shell, and the gateway's
## registry and mirror in Docker's daemon.json; idempotent. DESTDIR=DIR does it
## under DIR; RDSH=PATH installs that build instead of building a release one.
.PHONY: install-node
install-node:
ifeq ($(origin RDSH),undefined)
	$(CARGO) build --release --locked --bin rdsh
	DESTDIR="$(DESTDIR)" rdsh/install-node "$(or $(CARGO_TARGET_DIR),target)/release/rdsh"
else
	DESTDIR="$(DESTDIR)" rdsh/install-node "$(RDSH)"
endif

## The gateway's tools, man pages and completions under $(DESTDIR)$(PREFIX), and
## an example /etc/baleine/baleine.conf unless one exists. What was installed is
## listed in $(MANIFEST), paths as on the installed system (without DESTDIR),
## the configuration with its checksum: uninstall removes exactly those files,
## never one outside $(PREFIX) but that configuration, and that one only as
## install left it (an edited configuration is kept).
PREFIX ?= /usr/local
MANIFEST = $(DESTDIR)$(PREFIX)/share/baleine/installed-files
CONF = /etc/baleine/baleine.conf

install: build
	@set -e; record() { echo "$$1" >> "$(MANIFEST).new"; }; \
	mkdir -p "$(dir $(MANIFEST))"; : > "$(MANIFEST).new"; \
	put() { install -D -m "$$1" "$$2" "$(DESTDIR)$$3"; record "$$3"; }; \
	for tool in $(TOOLS); do put 755 "$(BUILD_DIR)/$$tool" "$(PREFIX)/bin/$$tool"; done; \
	for page in man/*.[157]; do \
	  put 644 "$$page" "$(PREFIX)/share/man/man$${page##*.}/$${page#man/}"; done; \
	for tool in $(TOOLS); do \
	  put 644 "completions/bash/$$tool" "$(PREFIX)/share/bash-completion/completions/$$tool"; \
	  put 644 "completions/zsh/_$$tool" "$(PREFIX)/share/zsh/site-functions/_$$tool"; \
	  put 644 "completions/fish/$$tool.fish" "$(PREFIX)/share/fish/vendor_completions.d/$$tool.fish"; done; \
	if [ -e "$(DESTDIR)$(CONF)" ]; then \
	  echo "install: keeping the existing $(DESTDIR)$(CONF)"; \
	  grep -s "^$(CONF) " "$(MANIFEST)" >> "$(MANIFEST).new" || true; \
	else install -D -m 644 bins/gateway/baleine.conf "$(DESTDIR)$(CONF)"; \
	  record "$(CONF) $$(sha256sum < "$(DESTDIR)$(CONF)" | cut -d' ' -f1)"; fi; \
	mv "$(MANIFEST).new" "$(MANIFEST)"; \
	echo "installed $$(wc -l < "$(MANIFEST)") files, listed in $(MANIFEST)"

uninstall:
	@set -e; [ -f "$(MANIFEST)" ] || { echo "uninstall: nothing installed under $(DESTDIR)$(PREFIX)"; exit 0; }; \
	while read -r file sum; do \
	  case $$file in \
	    $(CONF)) \
	      if [ "$$(sha256sum < "$(DESTDIR)$$file" 2>/dev/null | cut -d' ' -f1)" = "$$sum" ]; then rm -f "$(DESTDIR)$$file"; \
	      else echo "uninstall: keeping $(DESTDIR)$$file, changed since install"; fi ;; \
	    $(PREFIX)/*) case $$file in *..*) echo "uninstall: ignoring $$file (not a plain path)" >&2 ;; \
	      *) rm -f "$(DESTDIR)$$file" ;; esac ;; \
	    *) echo "uninstall: ignoring $$file, outside $(PREFIX)" >&2 ;; \
	  esac; \
	done < "$(MANIFEST)"; \
	rm -f "$(MANIFEST)"; rmdir "$(dir $(MANIFEST))" 2>/dev/null || true; \
	echo "uninstalled what install had put"
