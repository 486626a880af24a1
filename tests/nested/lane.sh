#!/usr/bin/env bash
# The second KVM: upstream kvm_amd inside a QEMU (TCG) guest whose emulated
# AMD CPU has SVM (../shared/notes/nested-kvm.md). Boots a Debian kernel with
# an initramfs holding busybox, this build's host binary and guest ELFs, runs
# tests/nested/cases.sh there and prints what the serial console said.
#
#   tests/nested/lane.sh HOST_BINARY PAYLOAD_DIR OUT_DIR
#
# PAYLOAD_DIR holds the guest ELFs and flat images by name, and cases.sh,
# the commands to run (tests/nested.rs writes both); they go to /guests. Packages come from Debian and are
# cached in OUT_DIR/cache. Exit codes: 0 the cases ran (their verdicts are in
# the output), 3 skipped (the line `SKIPPED nested: <reason>` says why),
# 4 the VM did not finish in time, 1 anything else. Every failure is one line.
set -uo pipefail

host_bin=${1:?host binary}
payload=${2:?payload folder}
out=${3:?output folder}
mkdir -p "$out" && out=$(cd "$out" && pwd) || { echo "nested: error: cannot create $3"; exit 1; }
cache="${KVMWB_NESTED_CACHE:-$(dirname "$out")/nested-cache}"
# The kernel package: pinned, with the current dependency of
# linux-image-amd64 as the fallback when Debian has dropped the pin.
pinned_kernel=linux-image-6.1.0-48-amd64
timeout_s=${KVMWB_NESTED_TIMEOUT:-150}

skip() { echo "SKIPPED nested: $*"; exit 3; }
fail() { echo "nested: error: $*"; exit 1; }

mkdir -p "$cache" || fail "cannot create $cache"

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[ -x /bin/busybox ] && dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        skip "needs ${need[*]} (Debian packages) and cannot install them (not root, or no apt-get)"
    fi
    { apt-get install -y "${need[@]}" || { apt-get update && apt-get install -y "${need[@]}"; }; } \
        >"$out/apt.log" 2>&1 || skip "cannot install ${need[*]} (see $out/apt.log)"
fi
busybox_bin=/bin/busybox   # busybox-static's: needs no libraries

deb=$(ls "$cache"/linux-image-*.deb 2>/dev/null | head -1)
if [ -z "$deb" ]; then
    kernel=$pinned_kernel
    if ! (cd "$cache" && apt-get download "$kernel") >"$out/kernel.log" 2>&1; then
        kernel=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
        [ -n "$kernel" ] || { apt-get update >/dev/null 2>&1; kernel=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'); }
        [ -n "$kernel" ] || skip "kernel package $pinned_kernel not found, and linux-image-amd64 names none"
        (cd "$cache" && apt-get download "$kernel") >>"$out/kernel.log" 2>&1 ||
            skip "cannot download $kernel (see $out/kernel.log)"
    fi
    deb=$(ls "$cache"/linux-image-*.deb 2>/dev/null | head -1)
fi
[ -n "$deb" ] || skip "no kernel package in $cache"
kx="$cache/kernel"
if [ ! -d "$kx/boot" ]; then
    rm -rf "$kx" && dpkg -x "$deb" "$kx" || fail "cannot unpack $deb"
fi
vmlinuz=$(ls "$kx"/boot/vmlinuz-* | head -1)
moddir=$(ls -d "$kx"/lib/modules/*/kernel | head -1)

# the initramfs
root="$out/root"
rm -rf "$root" && mkdir -p "$root"/{bin,lib64,lib/x86_64-linux-gnu,guests,modules,proc,sys,dev,tmp} || fail "cannot make $root"
cp "$busybox_bin" "$root/bin/busybox"
for m in virt/lib/irqbypass arch/x86/kvm/kvm drivers/crypto/ccp/ccp arch/x86/kvm/kvm-amd; do
    f=$(ls "$moddir/$m".ko* 2>/dev/null | head -1)
    [ -n "$f" ] || fail "module $m not in $deb"
    case "$f" in
        *.xz) xz -dc "$f" >"$root/modules/$(basename "$m").ko" ;;
        *.zst) zstd -dcq "$f" >"$root/modules/$(basename "$m").ko" ;;
        *) cp "$f" "$root/modules/$(basename "$m").ko" ;;
    esac
done
objcopy --strip-debug "$host_bin" "$root/bin/host" 2>/dev/null || cp "$host_bin" "$root/bin/host"
for lib in $(ldd "$host_bin" | awk '/=>/ {print $3} /ld-linux/ {print $1}'); do
    [ -f "$lib" ] && cp -L "$lib" "$root$lib" 2>/dev/null || cp -L "$lib" "$root/lib/x86_64-linux-gnu/"
done
cp -r "$payload"/. "$root/guests/" || fail "cannot copy $payload"
cat >"$root/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in irqbypass kvm ccp kvm-amd; do insmod /modules/$m.ko 2>/dev/null; done
# loopback, for the gdb cases' client
ifconfig lo 127.0.0.1 up 2>/dev/null || ip link set lo up
echo "=== NESTED BEGIN $(uname -r) cpus $(nproc)"
[ -c /dev/kvm ] && echo "=== KVM ready" || echo "=== KVM missing"
cd /guests && sh ./cases.sh
echo "=== NESTED END"
poweroff -f
EOF
chmod +x "$root/init" "$root/bin/busybox"
(cd "$root" && find . | cpio -o -H newc 2>/dev/null | gzip -1 >"$out/initrd.gz") || fail "cannot pack the initramfs"

# thread=single: with multi-threaded TCG about one boot in four froze the
# whole nested machine mid-case (measured 2026-12-02: 3 of ~12); with one
# TCG thread, 13 of 13 boots ran clean at the same speed.
timeout --kill-after=10 "$timeout_s" qemu-system-x86_64 \
    -accel tcg,thread=single -cpu EPYC,+svm -m 1024 -smp 2 -nographic -no-reboot \
    -kernel "$vmlinuz" -initrd "$out/initrd.gz" \
    -append "console=ttyS0 quiet panic=-1 loglevel=1" </dev/null >"$out/serial.txt" 2>"$out/qemu.log"
rc=$?
tr -d '\r' <"$out/serial.txt"
if [ $rc = 124 ] || [ $rc = 137 ]; then
    echo "nested: error: the VM did not power off within ${timeout_s} s"
    exit 4
fi
grep -q "=== NESTED END" "$out/serial.txt" || fail "the VM stopped before its cases ended (QEMU exit $rc, see $out/qemu.log)"
exit 0
