# Everything goes through cargo; these targets only add the toolchain install
# (rustup here does not install rust-toolchain.toml's toolchain on its own).
CARGO ?= cargo

.PHONY: bench-compare bench-irq bench-nested bench-nested-simvirtio bench-nested-snapshot all toolchain test-deps binfmt-clean guest-runner-remove order-check binutils size disasm flat demo guests run list test lint fmt bench clean abi-doc order-file

all: demo

# Installs the nightly pinned in rust-toolchain.toml with its components and
# targets; a no-op when it is already there.
toolchain:
	@rustup toolchain install >/dev/null 2>&1 || rustup toolchain install

# What the tests drive (gdb, strace, rsvg-convert, QEMU for the nested lane,
# ...): the one list is tools/test-deps.txt. Installed with apt-get when
# missing and root; otherwise one line with the apt command to run.
test-deps:
	@./tools/test-deps

# Guest ELFs need no binfmt_misc entry: started by Linux (`cargo run -p
# guest-kernel --bin NAME`, `cargo test -p guest-rt`, ./target/.../NAME) they
# hand themselves to the host (guest_rt::launch, docs/guests.md). Earlier
# versions registered an entry `kvmwb-guest` pointing into the clone that
# made it; a stale one would still intercept guest ELFs, so `make test`
# removes it, or says how when it cannot.
BINFMT := /proc/sys/fs/binfmt_misc
binfmt-clean:
	@if [ -e $(BINFMT)/kvmwb-guest ]; then \
	    if [ -w $(BINFMT)/kvmwb-guest ]; then echo -1 > $(BINFMT)/kvmwb-guest && echo "removed the old binfmt_misc entry kvmwb-guest (no longer needed)"; \
	    else echo "make test: an old binfmt_misc entry hands guest ELFs to $$(sed -n 's/^interpreter //p' $(BINFMT)/kvmwb-guest); remove it with: echo -1 | sudo tee $(BINFMT)/kvmwb-guest"; exit 1; fi; \
	fi
guest-runner-remove: binfmt-clean

# cargo-binutils (cargo size / objdump / objcopy over the toolchain's
# llvm-tools component), installed once with the project's toolchain.
binutils: toolchain
	@$(CARGO) size --version >/dev/null 2>&1 || $(CARGO) install cargo-binutils --locked --quiet

# make size GUEST=hello: the guest's sections and their sizes (DWARF included).
size: binutils
	$(CARGO) size -q -p guest-kernel --bin $(GUEST) -- -A

# make disasm GUEST=hello: the guest's code, disassembled with its symbols
# (Rust names demangled) and the source lines each part comes from.
disasm: binutils
	$(CARGO) objdump -q -p guest-kernel --bin $(GUEST) -- -d --no-show-raw-insn --demangle --source

# make flat GUEST=hello: the guest as a flat image (objcopy -O binary) in
# target/flat/GUEST.bin, loaded at its link address 0x100000:
#   host run target/flat/hello.bin --flat 0x100000
flat: binutils
	@mkdir -p target/flat
	$(CARGO) objcopy -q -p guest-kernel --bin $(GUEST) -- -O binary target/flat/$(GUEST).bin
	@echo "target/flat/$(GUEST).bin: run it with host run target/flat/$(GUEST).bin --flat 0x100000"

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

# All tests (unit, real guests under KVM, CLI, and the guests' own #[test_case]s,
# each in a VM), then format and lint checks, then the order file's check.
test: toolchain test-deps binfmt-clean binutils
	$(CARGO) test --workspace
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy -p host -p hypercall-abi -p guest-rt-macros --all-targets -- -D warnings
	$(CARGO) clippy -p guest-kernel -p guest-rt -- -D warnings
	$(MAKE) --no-print-directory order-check

lint: test

fmt: toolchain
	$(CARGO) fmt --all

# Benchmark (release build). Side by side with the C floor:
#   cp -r ../shared/bench-floor /tmp/bf && CANDIDATE="$(CURDIR)/target/release/host bench" make -C /tmp/bf run
bench: toolchain
	$(CARGO) build --release -p host
	./target/release/host bench

# The host next to the C floor in one run, so only ratios count (the machine's
# speed varies by 2x between days): copies ../shared/bench-floor (read-only
# here) to target/bench-floor, runs `host bench` interleaved with kvm_floor
# (`run`), then `host run hello` against hello_floor as whole processes
# (`process`). FLOOR= points elsewhere.
FLOOR ?= ../shared/bench-floor
bench-compare: toolchain
	$(CARGO) build --release -p host
	rm -rf target/bench-floor && cp -r $(FLOOR) target/bench-floor && chmod -R u+w target/bench-floor
	CANDIDATE="$(CURDIR)/target/release/host bench --process-iters 0" $(MAKE) -C target/bench-floor run
	CANDIDATE="$(CURDIR)/target/release/host run hello" $(MAKE) -C target/bench-floor process

# The interrupt figures against irq_floor, interleaved (ratios in
# target/bench-floor/results/irq/ratios.txt): only `host bench`'s interrupt
# stage runs.
bench-irq: toolchain
	$(CARGO) build --release -p host
	rm -rf target/bench-floor && cp -r $(FLOOR) target/bench-floor && chmod -R u+w target/bench-floor
	CANDIDATE="$(CURDIR)/target/release/host bench --exits 0 --vm-iters 1 --process-iters 0 --preempt-quanta 0 --simvirtio-runs 0 --matrix-vms 0" $(MAKE) -C target/bench-floor irq

# Stages of `host bench` on the second KVM (kvm_amd in QEMU's TCG,
# tests/nested/lane.sh), with the release build and its guests:
# bench-nested-simvirtio (the three SIMVIRTIO modes), bench-nested-snapshot
# (save/restore at 2 MiB and 1 GiB, clones), or bench-nested NESTED_ARGS="...".
NESTED_ARGS ?= --exits 0 --vm-iters 1 --process-iters 0 --preempt-quanta 0 --matrix-vms 0 --irq-injections 0
bench-nested-simvirtio:
	$(MAKE) bench-nested NESTED_ARGS="--exits 0 --vm-iters 1 --process-iters 0 --preempt-quanta 0 --matrix-vms 0 --irq-injections 0 --snapshot-runs 0 --simvirtio-runs 5"
bench-nested-snapshot:
	$(MAKE) bench-nested NESTED_ARGS="--exits 0 --vm-iters 20 --process-iters 0 --preempt-quanta 0 --matrix-vms 0 --irq-injections 0 --simvirtio-runs 0 --snapshot-runs 5 --snapshot-clones 200"
bench-nested: toolchain
	$(CARGO) build --release -p host
	rm -rf target/nested-bench && mkdir -p target/nested-bench/payload
	./target/release/host list | while read -r n p; do cp "$$p" "target/nested-bench/payload/$$n"; done
	echo 'cd /guests && timeout 400 host bench $(NESTED_ARGS)' >target/nested-bench/payload/cases.sh
	KVMWB_NESTED_TIMEOUT=500 bash tests/nested/lane.sh ./target/release/host target/nested-bench/payload target/nested-bench/out 2>/dev/null | grep -E '^(simvirtio|snapshot|vm_create|nested|SKIPPED|host:)'

# The functions `host run hello` executes, for the linker to put side by side
# in release builds (host/build.rs, tools/order-file): run it when that path
# changes. Needs a C compiler, nm and python3.
order-file: toolchain
	$(CARGO) build --release -p host
	./tools/order-file
	$(CARGO) build --release -p host

# Fails when `host run hello` executes functions host/link/order.txt does
# not list (a stale list silently raised its RSS from ~816 to 1148 KiB once):
# a step of `make test`, so CI keeps the release host's speed from rotting.
order-check: toolchain
	$(CARGO) build -q --release -p host
	./tools/order-file --check

clean:
	$(CARGO) clean

# The docs' pictures of the HTML report (docs/img/report-*.png), from real
# runs drawn by chromium (tools/doc-shots).
doc-shots: toolchain test-deps
	$(CARGO) build -p guest-kernel -p host
	./tools/doc-shots

# Rewrites the generated tables of docs/abi.md from hypercall-abi (a test
# fails when they differ: "docs/abi.md is stale: run `make abi-doc`").
abi-doc: toolchain
	$(CARGO) run -q -p host -- abi --update-doc docs/abi.md
