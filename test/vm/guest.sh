#!/bin/bash
# Runs inside the VM that test/vm/run.sh boots, as the service
# $NAME-vm-scenarios.service (test/vm/scenarios.service), after every boot:
#
#   boot 1: wait for the boot to finish; run the scenarios (all of them but
#           the reboot scenario, or what run.sh's arguments select); then the
#           first half of the reboot scenario, which writes notes and leaves
#           its state in $REBOOT_STATE; then `systemctl reboot`.
#   boot 2: the second half of the reboot scenario, then `systemctl poweroff`.
#
# Everything it has to say goes to the results disk (/dev/vdb, an empty ext4
# file system that run.sh made and reads back once qemu has exited), in
# out/: a log per phase with its exit status, what the machine is (systemd
# and cgroup version), timings, and the daemon's units and journal when a
# phase failed. The scenarios' output is also copied to the serial console,
# which run.sh shows as it comes.
set -u

: "${NAME:?set by the unit}" "${PACKAGE:?set by the unit}"
SCENARIOS=/usr/local/bin/$NAME-scenarios
state=/var/lib/$NAME-vm        # this script's own, on the root disk
export REBOOT_STATE=$state/reboot-scenario
results=/run/$NAME-vm-results
out=$results/out
console=/dev/ttyS0
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
say() { echo "vm: $*" >"$console"; echo "$*" >>"$out/progress"; }

mkdir -p "$state" "$results"
mount -t ext4 /dev/vdb "$results" || { echo "vm: cannot mount the results disk /dev/vdb" >"$console"; systemctl poweroff; exit 1; }
mkdir -p "$out"
[[ -e $state/boots ]] || echo 0 >"$state/boots"
boot=$(($(cat "$state/boots") + 1))
echo "$boot" >"$state/boots"

finish() { # finish reboot|poweroff
	sync
	say "boot $boot: $1"
	umount "$results" 2>/dev/null || true
	systemctl "$1"
	exit 0
}

# The boot is over when no job is left but this one (Type=exec: started).
t=$(now)
st=$(timeout 600 systemctl is-system-running --wait 2>/dev/null) || true
booted_at=$(cut -d' ' -f1 /proc/uptime)
{
	echo "boot $boot: $st after ${booted_at}s of uptime (waited $(since "$t")s here)"
	systemd-analyze time 2>&1 | head -1
	echo "systemd: $(systemctl --version | head -1)"
	echo "kernel: $(uname -r)"
	echo "cgroup: $(stat -fc %T /sys/fs/cgroup) ($(cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null))"
	systemctl --failed --no-legend --plain
} >>"$out/machine.txt" 2>&1
say "boot $boot: system $st after ${booted_at}s"
if [[ $st != running ]]; then
	# A real machine has no units known to fail: any failure is reported.
	systemctl --failed --no-legend --plain >"$console" 2>&1
	echo "$st" >"$out/boot-$boot.failed"
fi

diagnose() { # diagnose PHASE: the daemon's units and journal, as run.sh prints them
	{
		systemctl status --no-pager --lines=0 "$NAME.socket" "$NAME-metrics.socket" "$NAME.service" "$NAME-standalone.service"
		journalctl --no-pager -b -u "$NAME.service" -u "$NAME.socket" -u "$NAME-metrics.socket" -u "$NAME-standalone.service" | tail -n 300
	} >"$out/$1.diagnosis" 2>&1
}

# run PHASE ARGS...: the scenario binary, its output to the results disk and
# the console, its exit status to PHASE.rc.
run() {
	local phase=$1 t rc
	shift
	t=$(now)
	say "boot $boot: $phase: $SCENARIOS $*"
	"$SCENARIOS" -test.v "$@" 2>&1 | tee "$out/$phase.log" >"$console"
	rc=${PIPESTATUS[0]}
	echo "$rc" >"$out/$phase.rc"
	echo "$phase $(since "$t")" >>"$out/timing"
	((rc == 0)) || diagnose "$phase"
	sync
	return "$rc"
}

mapfile -t args </etc/"$NAME"-vm/args
mapfile -t timeout </etc/"$NAME"-vm/test-timeout
reboot=$(cat /etc/"$NAME"-vm/reboot)
if ((boot == 1)); then
	echo "booted $booted_at" >>"$out/timing"
	if ((${#args[@]})); then
		run scenarios -test.timeout="${timeout[0]}" "${args[@]}"
	else
		# The reboot scenario runs last, by itself, after the package's
		# scenarios have removed and reinstalled the package (which
		# purges the notes).
		run scenarios -test.timeout="${timeout[0]}" -test.skip '^TestReboot'
	fi
	if [[ $reboot == 1 ]]; then
		rm -f "$REBOOT_STATE"
		if run reboot-before -test.timeout=5m -test.run '^TestReboot' && [[ -e $REBOOT_STATE ]]; then
			date +%s.%N >"$state/reboot-requested"
			finish reboot
		fi
	fi
	finish poweroff
fi
# boot 2: after the reboot the scenario asked for.
if [[ -e $state/reboot-requested ]]; then
	echo "rebooted $(since "$(cat "$state/reboot-requested")")" >>"$out/timing"
	echo "booted-again $booted_at" >>"$out/timing"
	rm -f "$state/reboot-requested"
	run reboot-after -test.timeout=5m -test.run '^TestReboot'
fi
finish poweroff
