# baleine: build, test and demo on a local copy of the R2Lab testbed.
# The two commands for a fresh machine (as root): `make demo` and `make test`.

N ?= 4
CARGO ?= cargo
TESTBED := tests/testbed/testbed
export BALEINE_TESTBED_DIR ?= /tmp/baleine-testbed

.PHONY: all build deps lint test testbed-up testbed-down demo

all: build

build:
	$(CARGO) build --release --locked

## Debian packages and the rhubarbe venv, installed only when missing (root).
deps:
	tests/testbed/deps

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --locked --all-targets -- -D warnings

testbed-up: deps
	$(TESTBED) up $(N)

testbed-down:
	$(TESTBED) down

## Unit tests, then integration tests against one shared testbed, which is
## torn down afterwards whatever the outcome (KEEP_TESTBED=1 keeps it up).
test: deps lint
	$(CARGO) build --workspace --locked --all-targets
	$(TESTBED) up $(N)
	status=0; $(CARGO) test --workspace --locked || status=$$?; \
	  [ -n "$(KEEP_TESTBED)" ] || $(TESTBED) down; exit $$status

## deps, build, a 4-node testbed, and the main job on it.
demo: deps build
	$(TESTBED) up $(N)
	tests/demo
