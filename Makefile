# Everything goes through cargo; these targets only add the toolchain install
# (rustup here does not install rust-toolchain.toml's toolchain on its own).
CARGO ?= cargo

.PHONY: all toolchain test-deps demo guests run list test lint fmt bench clean abi-doc

all: demo

# Installs the nightly pinned in rust-toolchain.toml with its components and
# targets; a no-op when it is already there.
toolchain:
	@rustup toolchain install >/dev/null 2>&1 || rustup toolchain install

# Debian's gdb, which tests/gdb.rs drives (installed with apt when missing).
test-deps:
	@command -v gdb >/dev/null || (apt-get update -qq && apt-get install -y -qq gdb)

# Builds the guests, then runs the default one (hello) in a VM.
demo: toolchain
	$(CARGO) build -p guest-kernel
	$(CARGO) run -p host

guests: toolchain
	$(CARGO) build -p guest-kernel

# make run GUEST=hypercalls ARGS="--json"
GUEST ?= hello
run: toolchain
	$(CARGO) run -p host -- run $(GUEST) $(ARGS)

list: toolchain
	$(CARGO) run -p host -- list

# All tests (unit + real guests under KVM + CLI), then format and lint checks.
test: toolchain test-deps
	$(CARGO) test
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -p host -p hypercall-abi --all-targets -- -D warnings
	$(CARGO) clippy -p guest-kernel -p guest-rt -- -D warnings

lint: test

fmt: toolchain
	$(CARGO) fmt --all

# Benchmark (release build). Side by side with the C floor:
#   cp -r ../shared/bench-floor /tmp/bf && CANDIDATE="$(CURDIR)/target/release/host bench" make -C /tmp/bf run
bench: toolchain
	$(CARGO) build --release -p host
	./target/release/host bench

clean:
	$(CARGO) clean

# Rewrites the generated tables of docs/abi.md from hypercall-abi (a test
# fails when they differ: "docs/abi.md is stale: run `make abi-doc`").
abi-doc: toolchain
	$(CARGO) run -q -p host -- abi --update-doc docs/abi.md
