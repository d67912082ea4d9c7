#!/usr/bin/env bash
# Run the systemd scenario tests (test/systemd) on a virtual machine with its
# own kernel: Debian forky, systemd 262, cgroup v2, which no container on a
# cgroup v1 host can give (systemd >= 258 refuses cgroup v1). It builds the
# package as test/systemd/run.sh does (packaging/deb.sh), copies the cached
# root (base-root.sh), installs the package into the copy with dpkg -i in a
# chroot, as Dockerfile.test does in the container, adds the scenario test
# binary and a unit that runs it at boot (scenarios.service, guest.sh), makes
# a disk of it with mkfs.ext4 -d and boots it with qemu. The guest runs the
# scenarios, reboots once for the reboot scenario, and powers off; the
# results come back on a second disk, and the scenarios' output on the serial
# console as they run.
#
# Usage: bash test/vm/run.sh [go test flags, e.g. -test.run Reload]
#   (with flags, the reboot scenario runs only if REBOOT=1)
#   NAME         binary and unit name (default: daemon)
#   DIST         Debian suite of the root (default: forky)
#   DEB          the package to install (default: built now by packaging/deb.sh,
#                from BINARY if set)
#   BINARY       the daemon binary to package (default: deb.sh builds it)
#   TEST_BINARY  the scenario test binary (default: built now)
#   ACCEL        qemu's accelerator (default: tcg,thread=multi; KVM fails on
#                the machines this was written on, see issue 18)
#   CPUS, MEM    the VM's (default: 4 and 2048 MB; 4 CPUs, more than the
#                host's 2, so that TestGOMAXPROCSFollowsCPUQuota sees a
#                quota lower GOMAXPROCS, which Go never sets below 2)
#   TEST_TIMEOUT the scenarios' -test.timeout in the guest (default: 25m)
#   VM_TIMEOUT   seconds qemu may run in all (default: 2100)
#   REBOOT       1 or 0: run the reboot scenario (default: 1 without flags)
#   KEEP=1       keep the disk images and the console log afterwards
#
# Needs: qemu-system-x86 (qemu-system-x86_64), debootstrap, e2fsprogs
# (mkfs.ext4 -d, debugfs), go; run as root (debootstrap, chroot). It
# installs nothing.
set -euo pipefail

NAME=${NAME:-daemon}
DIST=${DIST:-forky}
ACCEL=${ACCEL:-tcg,thread=multi}
CPUS=${CPUS:-4}
MEM=${MEM:-2048}
TEST_TIMEOUT=${TEST_TIMEOUT:-25m}
VM_TIMEOUT=${VM_TIMEOUT:-2100}
if [[ -z ${REBOOT:-} ]]; then if (($#)); then REBOOT=0; else REBOOT=1; fi; fi
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
start_all=$(now)

log() { printf '%s: %s\n' "vm/${0##*/}" "$*" >&2; }
die() { log "$*"; exit 1; }

((EUID == 0)) || die "run as root: debootstrap and chroot need it"
for c in qemu-system-x86_64:qemu-system-x86 mkfs.ext4:e2fsprogs debugfs:e2fsprogs debootstrap:debootstrap go:golang; do
	command -v "${c%%:*}" >/dev/null || die "${c%%:*} is not installed (apt-get install ${c#*:})"
done

work=$(mktemp -d "${TMPDIR:-/var/tmp}/$NAME-vm-test.XXXXXX")
qemu_pid=
cleanup() {
	local rc=$?
	[[ -n $qemu_pid ]] && kill "$qemu_pid" 2>/dev/null || true
	if [[ ${KEEP:-0} == 1 ]]; then
		log "KEEP=1: disks, console log and results left in $work"
	else
		rm -rf --one-file-system "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- The root, the package, the test binary --------------------------------
t=$(now)
base=$(NAME=$NAME DIST=$DIST bash "$here/base-root.sh")
time_base=$(since "$t")

t=$(now)
if [[ -z ${DEB:-} ]]; then
	# The same script as `make deb` and test/systemd/run.sh.
	DEB=$(NAME=$NAME OUT=$work/dist bash "$top/packaging/deb.sh" 2>"$work/deb.log") ||
		{ cat "$work/deb.log" >&2; die "building the package failed"; }
fi
if [[ -z ${TEST_BINARY:-} ]]; then
	TEST_BINARY=$work/scenarios.test
	(cd "$top" && CGO_ENABLED=0 go test -c -tags systemd -o "$TEST_BINARY" ./test/systemd)
fi
time_go=$(since "$t")
log "package: ${DEB##*/}"

# --- The machine's disks ------------------------------------------------------
t=$(now)
root=$work/root
cp -a "$base" "$root"
# Its own machine ID, kept across the reboot (the journal, the boot IDs).
systemd_id=$(tr -d - </proc/sys/kernel/random/uuid)
echo "$systemd_id" >"$root/etc/machine-id"
echo "$NAME-vm" >"$root/etc/hostname"
# The package, installed as in Dockerfile.test: no systemd runs in the
# chroot, so postinst links the drop-ins for the root's systemd (its
# `systemctl --version`), enables the sockets and starts nothing. The .deb
# stays, for the scenarios that reinstall it.
cp "$DEB" "$root/var/cache/$NAME-scenarios.deb"
# The walkthrough whose commands TestWalkthrough runs (test/systemd/run.sh).
cp "$top/docs/walkthrough.md" "$root/var/cache/$NAME-walkthrough.md"
chroot "$root" dpkg -i "/var/cache/$NAME-scenarios.deb" >"$work/dpkg.log" 2>&1 ||
	{ cat "$work/dpkg.log" >&2; die "dpkg -i in the root failed"; }
# The scenarios, and the unit that runs them at boot.
install -m 0755 "$TEST_BINARY" "$root/usr/local/bin/$NAME-scenarios"
install -D -m 0755 "$here/guest.sh" "$root/usr/local/lib/$NAME-vm/guest.sh"
sed "s/@NAME@/$NAME/g" "$here/scenarios.service" >"$root/etc/systemd/system/$NAME-vm-scenarios.service"
mkdir -p "$root/etc/systemd/system/multi-user.target.wants" "$root/etc/$NAME-vm"
ln -s "../$NAME-vm-scenarios.service" "$root/etc/systemd/system/multi-user.target.wants/"
if (($#)); then printf '%s\n' "$@"; fi >"$root/etc/$NAME-vm/args"
echo "$TEST_TIMEOUT" >"$root/etc/$NAME-vm/test-timeout"
echo "$REBOOT" >"$root/etc/$NAME-vm/reboot"
kernel=$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)
initrd=$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)
cp "$kernel" "$initrd" "$work/"
# Sparse files; mkfs.ext4 -d fills the file system from the directory, with
# owners, modes and extended attributes, and needs no loop device.
truncate -s 4G "$work/root.img"
mkfs.ext4 -q -F -L root -d "$root" "$work/root.img"
rm -rf --one-file-system "$root"
truncate -s 64M "$work/results.img"
mkfs.ext4 -q -F -L results "$work/results.img"
time_disk=$(since "$t")

# --- Boot, scenarios, reboot, power off ---------------------------------------
t=$(now)
console=$work/console.log
: >"$console"
# -nic none: the guest has no network of its own (the scenarios need only
# loopback). No -no-reboot: the guest reboots once. A virtio RNG so that
# nothing waits for entropy early in the boot. panic=5: the kernel, emulated
# without KVM, has been seen to panic early in a boot (a fault in
# sched_clock_cpu, in an interrupt) before anything of ours ran; it then
# boots again after 5 s rather than hanging until VM_TIMEOUT. guest.sh
# counts only the boots it saw, so the phases go on as if none was lost.
timeout "$VM_TIMEOUT" qemu-system-x86_64 -accel "$ACCEL" -cpu max -m "$MEM" -smp "$CPUS" \
	-display none -monitor none -serial "file:$console" \
	-kernel "$work/${kernel##*/}" -initrd "$work/${initrd##*/}" \
	-append "root=/dev/vda rw console=ttyS0 quiet panic=5" \
	-drive "file=$work/root.img,format=raw,if=virtio" \
	-drive "file=$work/results.img,format=raw,if=virtio" \
	-device virtio-rng-pci -nic none >"$work/qemu.log" 2>&1 &
qemu_pid=$!
log "booting $DIST in qemu ($ACCEL, $CPUS CPUs, $MEM MB); the serial console follows"
# systemd 262 queries the terminal and marks its context (OSC 3008) with
# escape sequences on the console; they are dropped here, the text is kept.
tail -n +1 -f --pid="$qemu_pid" "$console" |
	sed -u -e 's/\x1b[]P][^\x1b]*\x1b\\//g' -e 's/\x1b\[[0-9;?!]*[A-Za-z]//g' -e 's/\x1b[78]//g' -e 's/\r//g' &
tail_pid=$!
qemu_rc=0
wait "$qemu_pid" || qemu_rc=$?
qemu_pid=
wait "$tail_pid" 2>/dev/null || true
time_vm=$(since "$t")
if ((qemu_rc == 124)); then
	log "the VM was still running after ${VM_TIMEOUT}s (VM_TIMEOUT): killed"
elif ((qemu_rc != 0)); then
	cat "$work/qemu.log" >&2
	log "qemu exited with status $qemu_rc"
fi

# --- Results --------------------------------------------------------------------
debugfs -R "rdump /out $work" "$work/results.img" >/dev/null 2>&1 || true
out=$work/out
[[ -d $out ]] || die "the VM left no results (console: KEEP=1 keeps $console)"
rc=0
((qemu_rc == 0)) || rc=1
cat "$out/machine.txt" >&2 || true
for f in "$out"/boot-*.failed; do
	[[ -e $f ]] || continue
	log "the system was $(cat "$f") after boot ${f//[!0-9]/}: see the failed units above"
	rc=1
done
phases=(scenarios)
((REBOOT == 1)) && phases+=(reboot-before reboot-after)
for p in "${phases[@]}"; do
	if [[ ! -e $out/$p.rc ]]; then
		log "phase $p did not finish"
		rc=1
	elif [[ $(cat "$out/$p.rc") != 0 ]]; then
		log "phase $p failed (exit status $(cat "$out/$p.rc")); the daemon's units and journal follow"
		cat "$out/$p.diagnosis" 2>/dev/null || true
		rc=1
	fi
done
# Each test counted once, with its last result: the reboot scenario runs in
# two halves, one per boot.
counts=$(cat "$out"/*.log 2>/dev/null |
	awk '/^--- (PASS|FAIL|SKIP): / { r[$3] = $2 } END { for (n in r) c[r[n]]++; printf "%d %d %d", c["PASS:"], c["FAIL:"], c["SKIP:"] }') || true
read -r passed failed skipped <<<"$counts"
((failed == 0)) || rc=1

timing() { awk -v k="$1" '$1 == k { print $2 }' "$out/timing" 2>/dev/null | tail -1; }
# One summary line in the form CI reads: "word: N passed, N failed".
echo "systemd-vm: $passed passed, $failed failed, $skipped skipped"
log "timing: root ${time_base}s, go build and package ${time_go}s, disks ${time_disk}s, boot $(timing booted)s, scenarios $(timing scenarios)s, reboot scenario $(timing reboot-before)s + reboot $(timing rebooted)s + $(timing reboot-after)s, VM in all ${time_vm}s, total $(since "$start_all")s (qemu $ACCEL, $DIST)"
exit "$rc"
