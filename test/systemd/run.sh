#!/usr/bin/env bash
# Run the systemd scenario tests: build the daemon's Debian package, boot a
# container with systemd as PID 1 and the package installed (Dockerfile.test),
# then run the scenario test binary (go test -c -tags systemd ./test/systemd)
# inside it, where it drives the daemon with systemctl, journalctl, dpkg and
# HTTP.
#
# Usage: bash test/systemd/run.sh [go test flags, e.g. -test.run Reload]
#   NAME      binary and unit name (default: daemon)
#   DIST      Debian suite of the base image (default: bookworm)
#   ENGINE    podman or docker (default: podman if installed, else docker if
#             its daemon answers)
#   BASE      base image (default: localhost/systemd-test-base:$DIST-RECIPE, built once by
#             base-image.sh with debootstrap and cached)
#   DEB       the package to install (default: built now by
#             packaging/deb.sh, from BINARY if set)
#   BINARY    the daemon binary to package (default: packaging/deb.sh
#             builds it from ./cmd/$NAME with CGO_ENABLED=0)
#   TEST_BINARY  the scenario test binary (default: built now)
#   DOCKERFILE   (default: Dockerfile.test)
#   KEEP=1    leave the container running afterwards, for a look inside
#   WALKTHROUGH_OUT  write docs/walkthrough.md made again from this run's
#             outputs to this file (make walkthrough; see
#             test/systemd/walkthrough)
#
# Needs: podman and runc (or docker), debootstrap, go (which fetches the
# pinned nfpm through the module proxy). It installs nothing.
set -euo pipefail

NAME=${NAME:-daemon}
DIST=${DIST:-bookworm}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
DOCKERFILE=${DOCKERFILE:-$top/Dockerfile.test}
# Wall-clock timings, in seconds with a tenth, for the closing report.
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
start_all=$(now)

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "$*"; exit 1; }

# --- The container engine -------------------------------------------------
if [[ -z ${ENGINE:-} ]]; then
	if command -v podman >/dev/null; then
		ENGINE=podman
	elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
		ENGINE=docker
	else
		die "no container engine: install podman and runc (or start docker)"
	fi
fi
export ENGINE

work=$(mktemp -d "${TMPDIR:-/tmp}/$NAME-systemd-test.XXXXXX")
container=$NAME-systemd-test-$$
cleanup() {
	local rc=$?
	if [[ ${KEEP:-0} == 1 ]] && "$ENGINE" container inspect "$container" >/dev/null 2>&1; then
		log "KEEP=1: container $container left running; remove it with: $ENGINE rm -f $container"
	else
		"$ENGINE" rm -f "$container" >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# hard_limit prints a hard resource limit of this shell in the form
# containers.conf and --ulimit take (-1 for unlimited).
hard_limit() {
	local v
	v=$(ulimit -H "$1")
	[[ $v == unlimited ]] && v=-1
	echo "$v"
}

run_flags=() build_flags=()
if [[ $ENGINE == podman ]]; then
	command -v runc >/dev/null || die "podman needs runc here (apt-get install runc)"
	# podman's own defaults do not fit every host, so the harness brings a
	# containers.conf(5) of its own:
	#  - runc, not crun: crun (podman 4.3's default) refuses to run on a
	#    host with hybrid cgroups (v1 controllers plus the v2 systemd tree).
	#  - default_ulimits: podman asks for 1048576 open files, more than a
	#    host may allow, and runc then fails to start the container ("error
	#    setting rlimit ... operation not permitted": without
	#    CAP_SYS_RESOURCE nothing can raise a hard limit). Ask for this
	#    host's own hard limits instead. For processes that is also capped
	#    by kernel.pid_max, because podman lowers its own limit to that at
	#    start, and a container cannot get more than podman has.
	#  - cgroup_manager and events_logger: podman talks to systemd and
	#    journald by default; on a host not booted with systemd (a CI
	#    sandbox), use cgroupfs and a plain file.
	nofile=$(hard_limit -n)
	nproc=$(hard_limit -u)
	pid_max=$(cat /proc/sys/kernel/pid_max)
	if ((nproc == -1 || nproc > pid_max)); then nproc=$pid_max; fi
	{
		echo '[containers]'
		echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
		echo '[engine]'
		echo 'runtime = "runc"'
		if [[ ! -d /run/systemd/system ]]; then
			echo 'cgroup_manager = "cgroupfs"'
			echo 'events_logger = "file"'
		fi
	} >"$work/containers.conf"
	export CONTAINERS_CONF=$work/containers.conf
	# podman build's RUN steps do not read default_ulimits; same limits.
	build_flags=(--ulimit="nofile=$nofile:$nofile" --ulimit="nproc=$nproc:$nproc")
	# --privileged: systemd builds each service's sandbox from namespaces,
	# mounts, seccomp and cgroups. Without the capabilities for that, it
	# skips (in a container, by design) every part it cannot set up, with
	# only a journal line such as "PrivateNetwork=yes is configured, but
	# network namespace setup failed, ignoring", and the service runs
	# unsandboxed. (daemon.service would keep most of its sandbox, because
	# PrivateUsers= gives systemd a user namespace to do it in, but the
	# scenarios' nsenter needs the capabilities too.)
	# --systemd=always: tmpfs on /run and /tmp, a cgroup tree systemd may
	# write, container=podman, SIGRTMIN+3 to stop.
	run_flags=(--privileged --systemd=always --network=none)
else
	# Docker (20.10 or later) has no --systemd; these give systemd what it
	# needs without --privileged, except CAP_SYS_RESOURCE, which the host's
	# root may itself lack. The host's /sys/fs/cgroup is never mounted in
	# read-write: a private cgroup namespace gives systemd its own subtree.
	run_flags=(--cgroupns=private --cap-add=ALL --cap-drop=SYS_RESOURCE
		--security-opt=seccomp=unconfined --security-opt=apparmor=unconfined
		--tmpfs=/run --tmpfs=/run/lock --tmpfs=/tmp
		--ulimit="nofile=$(hard_limit -n):$(hard_limit -n)"
		--env=container=docker --network=none)
fi

# --- Images ------------------------------------------------------------------
t=$(now)
if [[ -z ${BASE:-} ]]; then
	BASE=$(DIST=$DIST bash "$here/base-image.sh")
	# It has systemd already, so Dockerfile.test's RUN steps need no
	# network (a stock BASE does: apt-get installs systemd).
	build_flags+=(--network=none)
fi
time_base=$(since "$t")

# The build context holds only what Dockerfile.test copies, the package: a
# small, fast context with no .git and no stale files.
t=$(now)
ctx=$work/context
mkdir -p "$ctx"
if [[ -z ${DEB:-} ]]; then
	# The same script as `make deb`; BINARY, if set, passes through.
	DEB=$(NAME=$NAME OUT=$work/dist bash "$top/packaging/deb.sh" 2>"$work/deb.log") ||
		{ cat "$work/deb.log" >&2; die "building the package failed"; }
fi
cp "$DEB" "$ctx/$NAME.deb"
if [[ -z ${TEST_BINARY:-} ]]; then
	TEST_BINARY=$work/scenarios.test
	(cd "$top" && CGO_ENABLED=0 go test -c -tags systemd -o "$TEST_BINARY" ./test/systemd)
fi
time_go=$(since "$t")
log "package: ${DEB##*/}"

t=$(now)
image=localhost/$NAME-systemd-test:$DIST
old_image=$("$ENGINE" image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
"$ENGINE" build "${build_flags[@]}" -f "$DOCKERFILE" --build-arg "BASE=$BASE" \
	--build-arg "NAME=$NAME" -t "$image" "$ctx" >"$work/build.log" 2>&1 ||
	{ cat "$work/build.log" >&2; die "building $image from ${DOCKERFILE#"$top"/} failed"; }
# The previous build of this tag, now untagged, would pile up run after run.
if [[ -n $old_image && $old_image != $("$ENGINE" image inspect --format '{{.Id}}' "$image") ]]; then
	"$ENGINE" rmi "$old_image" >/dev/null 2>&1 || true
fi
time_image=$(since "$t")

# --- Boot --------------------------------------------------------------------
t=$(now)
"$ENGINE" run -d --name "$container" "${run_flags[@]}" "$image" >/dev/null
ctr() { "$ENGINE" exec "$container" "$@"; }

# systemctl needs PID 1's private socket, which appears a moment after the
# container starts; poll for it (bounded), then let systemctl wait for the
# boot to finish.
for ((i = 0; ; i++)); do
	state=$(ctr timeout 60 systemctl is-system-running --wait 2>/dev/null) && break
	case $state in
	running | degraded | maintenance | stopping | offline) break ;;
	esac
	((i < 300)) || die "systemd did not answer in the container within 30s"
	sleep 0.1
done
time_boot=$(since "$t")
boot_report=$(ctr systemd-analyze time 2>/dev/null | head -1 || true)
log "booted ($state) in ${time_boot}s: ${boot_report:-?}"

if [[ $state != running ]]; then
	ctr systemctl --failed --no-legend --plain >&2 || true
	# Units known to fail in a container for reasons that do not concern
	# the daemon would be listed here, one per line, with the reason. There
	# are none with the masks in Dockerfile.test on bookworm or trixie.
	known_harmless=()
	failed_units=$(ctr systemctl --failed --no-legend --plain | awk '{ print $1 }')
	for u in $failed_units; do
		printf '%s\n' "${known_harmless[@]}" | grep -qx "$u" ||
			die "system is $state: $u failed (journalctl -b -u $u in the container; KEEP=1 keeps it)"
	done
fi

# --- Scenarios -----------------------------------------------------------------
t=$(now)
"$ENGINE" cp "$TEST_BINARY" "$container:/usr/local/bin/$NAME-scenarios"
# The package again, for the scenarios that upgrade, remove and reinstall it.
"$ENGINE" cp "$ctx/$NAME.deb" "$container:/var/cache/$NAME-scenarios.deb"
# The walkthrough, whose commands TestWalkthrough runs and whose outputs it
# checks, or, with WALKTHROUGH_OUT set (make walkthrough), writes anew.
"$ENGINE" cp "$top/docs/walkthrough.md" "$container:/var/cache/$NAME-walkthrough.md"
walkthrough_env=()
if [[ -n ${WALKTHROUGH_OUT:-} ]]; then
	walkthrough_env=(WALKTHROUGH_OUT="/var/cache/$NAME-walkthrough.new.md")
fi
rc=0
ctr env NAME="$NAME" PACKAGE="/var/cache/$NAME-scenarios.deb" "${walkthrough_env[@]}" \
	"/usr/local/bin/$NAME-scenarios" -test.v -test.timeout=10m "$@" |
	tee "$work/scenarios.log" || rc=$?
if [[ -n ${WALKTHROUGH_OUT:-} ]] && ((rc == 0)); then
	"$ENGINE" cp "$container:/var/cache/$NAME-walkthrough.new.md" "$WALKTHROUGH_OUT" ||
		die "the walkthrough ran but wrote no doc (was TestWalkthrough selected?)"
	log "wrote $WALKTHROUGH_OUT"
fi
time_scenarios=$(since "$t")
passed=$(grep -c '^--- PASS' "$work/scenarios.log" || true)
failed=$(grep -c '^--- FAIL' "$work/scenarios.log" || true)
skipped=$(grep -c '^--- SKIP' "$work/scenarios.log" || true)

if ((rc != 0)); then
	log "scenarios failed; the daemon's units and journal follow"
	ctr systemctl status --no-pager --lines=0 "$NAME.socket" "$NAME-metrics.socket" "$NAME.service" "$NAME-standalone.service" || true
	ctr journalctl --no-pager -b -u "$NAME.service" -u "$NAME.socket" -u "$NAME-metrics.socket" -u "$NAME-standalone.service" | tail -n 300 || true
fi
# One summary line in the form CI reads: "word: N passed, N failed".
echo "systemd: $passed passed, $failed failed, $skipped skipped"
log "timing: base image ${time_base}s, go build and package ${time_go}s, test image ${time_image}s, boot ${time_boot}s, scenarios ${time_scenarios}s, total $(since "$start_all")s ($ENGINE, $DIST)"
exit "$rc"
