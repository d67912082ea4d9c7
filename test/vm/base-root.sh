#!/usr/bin/env bash
# Build (once) and cache the root file system the VM leg boots: a Debian
# root with systemd as PID 1, a kernel and its initrd, made with debootstrap
# from the apt mirror this machine already uses (as test/systemd/base-image.sh
# does for the containers). It is kept as a directory, not an image: run.sh
# copies it, installs the package into the copy with dpkg -i and makes a disk
# of it with mkfs.ext4 -d, which needs no loop device and no mount.
#
# Usage: bash test/vm/base-root.sh
#   NAME     binary and unit name (default: daemon); the root is cached in
#            $CACHE/$DIST/root
#   DIST     Debian suite to bootstrap (default: forky, systemd 262)
#   CACHE    where the roots are kept (default: /var/cache/$NAME-vm)
#   MIRROR   apt mirror URI (default: parsed from this machine's apt sources,
#            by base-image.sh's own function)
#   SCRIPT   debootstrap's suite script (default: sid for forky, which
#            Debian 12's debootstrap has no script of its own for; else $DIST)
#   REBUILD  set to 1 to build even when the root is already cached
#
# Prints the cached root's path on stdout; progress goes to stderr.
set -euo pipefail

NAME=${NAME:-daemon}
DIST=${DIST:-forky}
CACHE=${CACHE:-/var/cache/$NAME-vm}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
dir=$CACHE/$DIST
root=$dir/root

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

# The cached root is reused only if this script has not changed since it was
# built: its checksum is stored beside the root, written last, so that a build
# that was interrupted is never taken for a finished one.
recipe=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
if [[ ${REBUILD:-0} != 1 && -d $root && $(cat "$dir/recipe" 2>/dev/null) == "$recipe" ]]; then
	log "using cached $root"
	echo "$root"
	exit 0
fi

# The mirror, found as the container legs find it: base-image.sh's mirror()
# function, read from that file rather than copied here.
if [[ -z ${MIRROR:-} ]]; then
	# shellcheck source=/dev/null
	source <(sed -n '/^mirror() {$/,/^}$/p' "$top/test/systemd/base-image.sh")
	declare -F mirror >/dev/null || { log "test/systemd/base-image.sh has no mirror() function any more; set MIRROR=URI"; exit 1; }
	MIRROR=$(mirror | grep -m1 .) || true
fi
[[ -n ${MIRROR:-} ]] || { log "no Debian mirror found in /etc/apt/sources.list{,.d}; set MIRROR=URI"; exit 1; }
command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
if [[ -z ${SCRIPT:-} ]]; then
	SCRIPT=$DIST
	[[ -e /usr/share/debootstrap/scripts/$DIST ]] || SCRIPT=sid
fi
[[ $SCRIPT == /* ]] || SCRIPT=/usr/share/debootstrap/scripts/$SCRIPT

start=$SECONDS
mkdir -p "$dir"
rm -f "$dir/recipe"
rm -rf --one-file-system "$root" "$root.new"
trap 'rm -rf --one-file-system "$root.new"' EXIT

log "debootstrap $DIST from $MIRROR (script ${SCRIPT##*/})"
# minbase plus what the scenarios need, as base-image.sh's list says, and
# what a machine needs that a container does not: a kernel (its initrd comes
# with it) and udev for the devices. Of the operator's tools, prometheus and
# prometheus-node-exporter, for the one alert only this leg can show,
# memory pressure (cgroup v2 and systemd >= 254); the containers run the
# other alert scenarios, and the journal-remote one.
debootstrap --variant=minbase \
	--include=systemd,systemd-sysv,udev,linux-image-amd64,dbus,libnss-systemd,curl,ca-certificates,procps,iproute2,prometheus,prometheus-node-exporter \
	"$DIST" "$root.new" "$MIRROR" "$SCRIPT" >&2
# As in base-image.sh: the scenarios start their own Prometheus, and
# prometheus.service would take port 9090, the daemon's metrics socket's.
systemctl --root="$root.new" disable --quiet prometheus.service prometheus-node-exporter.service

# Every machine made from this root gets its own machine ID: run.sh writes
# one into each copy (an empty file would make the first boot a "first
# boot", with systemd-firstboot asking questions on the console).
rm -f "$root.new/var/lib/dbus/machine-id"
: >"$root.new/etc/machine-id"
rm -rf "$root.new"/var/lib/apt/lists/* "$root.new"/var/cache/apt/archives/*.deb
ls "$root.new"/boot/vmlinuz-* "$root.new"/boot/initrd.img-* >/dev/null ||
	{ log "the root has no kernel or no initrd in /boot"; exit 1; }

mv "$root.new" "$root"
echo "$recipe" >"$dir/recipe"
log "built $root in $((SECONDS - start))s ($(du -sm "$root" | cut -f1) MB)"
echo "$root"
