#!/usr/bin/env bash
# Build (once) and cache the base image the systemd scenario tests boot:
# a Debian root file system with systemd as PID 1, made with debootstrap
# from the same apt mirror this machine already uses, then imported into the
# container engine. Nothing is pulled from a container registry.
#
# Usage: bash test/systemd/base-image.sh
#   The image is localhost/systemd-test-base:$DIST-RECIPE: it holds systemd
#   and nothing of the service, so every service on the kit shares it.
#   RECIPE is this script's checksum, so that checkouts with different
#   recipes (two branches) each keep their own image instead of rebuilding
#   each other's.
#   DIST    Debian suite to bootstrap (default: bookworm; trixie works the same)
#   ENGINE  podman or docker (default: whatever run.sh detected, else podman)
#   MIRROR  apt mirror URI (default: parsed from this machine's apt sources)
#   REBUILD set to 1 to build even when the image is already cached
#
# Prints the image reference on stdout; progress goes to stderr.
set -euo pipefail

DIST=${DIST:-bookworm}
ENGINE=${ENGINE:-podman}

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

# The cached image is reused only if this script has not changed since it
# was built: its checksum is in the tag, and stored in the image as a label.
recipe=$(sha256sum "${BASH_SOURCE[0]}" | cut -c1-16)
IMAGE=localhost/systemd-test-base:$DIST-$recipe
label=systemd-test.base-recipe
if [[ ${REBUILD:-0} != 1 ]] &&
	[[ $("$ENGINE" image inspect --format "{{ index .Config.Labels \"$label\" }}" "$IMAGE" 2>/dev/null) == "$recipe" ]]; then
	log "using cached $IMAGE"
	echo "$IMAGE"
	exit 0
fi

# mirror prints the first Debian archive URI that this machine's apt
# configuration lists for a plain release suite (not -security/-updates), from
# either the one-line format (sources.list, *.list) or deb822 (*.sources).
# Files such as "*.list.disabled" are ignored, as apt itself ignores them.
mirror() {
	local f
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[[ -r $f ]] || continue
		# deb [opts] URI SUITE COMPONENTS...
		awk '$1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			if ($(i+1) !~ /-/ && $(i+1) !~ /\//) { print $i; exit }
		}' "$f"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		# Stanzas are separated by blank lines; keep "Types: deb" stanzas
		# whose Suites include a plain release name.
		awk 'BEGIN { RS = ""; FS = "\n" }
		{
			types = uris = suites = ""; enabled = 1
			for (n = 1; n <= NF; n++) {
				line = $n
				if (line ~ /^#/) continue
				key = tolower(line); sub(/:.*/, "", key)
				val = line; sub(/^[^:]*:[ \t]*/, "", val)
				if (key == "types") types = val
				else if (key == "uris") uris = val
				else if (key == "suites") suites = val
				else if (key == "enabled" && tolower(val) == "no") enabled = 0
			}
			if (!enabled || (" " types " ") !~ / deb /) next
			ns = split(suites, s, /[ \t]+/)
			for (k = 1; k <= ns; k++)
				if (s[k] != "" && s[k] !~ /[-\/]/) { split(uris, u, /[ \t]+/); print u[1]; exit }
		}' "$f"
	done
}

MIRROR=${MIRROR:-$(mirror | grep -m1 .)} || true
if [[ -z ${MIRROR:-} ]]; then
	log "no Debian mirror found in /etc/apt/sources.list{,.d}; set MIRROR=URI"
	exit 1
fi

command -v debootstrap >/dev/null || { log "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }

start=$SECONDS
rootfs=$(mktemp -d "${TMPDIR:-/var/tmp}/systemd-test-base-$DIST.XXXXXX")
trap 'rm -rf --one-file-system "$rootfs"' EXIT

log "debootstrap $DIST from $MIRROR"
# minbase: only Essential packages and apt; --include adds what the harness
# needs: systemd as PID 1 (systemd-sysv provides /sbin/init), dbus for
# logind and busctl, libnss-systemd so that dynamic users have names (ps,
# getent), curl (a scenario, and poking at the daemon by hand), procps (ps,
# and /bin/kill for ExecReload=) and iproute2 (ip and ss, to look at the
# sandbox and at connections); and what an operator watches the daemon
# with (docs/operating.md): prometheus, which scrapes it and evaluates the
# shipped alerting rules, prometheus-node-exporter, which reports its
# units' state, and systemd-journal-remote (journal-remote and
# journal-upload), which ships its journal to a collector.
debootstrap --variant=minbase \
	--include=systemd,systemd-sysv,dbus,libnss-systemd,curl,ca-certificates,procps,iproute2,prometheus,prometheus-node-exporter,systemd-journal-remote \
	"$DIST" "$rootfs" "$MIRROR" >&2
# The packages enable their services, and prometheus.service would listen
# on port 9090, the daemon's metrics socket's. The scenarios start their
# own, with the flags they need, on other ports.
systemctl --root="$rootfs" disable --quiet prometheus.service prometheus-node-exporter.service

# Every container booted from this image must get its own machine ID:
# systemd generates one at boot when /etc/machine-id is empty, and dbus
# would otherwise keep a stale copy of the build host's in /var/lib/dbus.
rm -f "$rootfs/var/lib/dbus/machine-id"
: >"$rootfs/etc/machine-id"
# Package lists and downloaded .debs are only needed to install more; the
# image does not, and they are most of its size.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb

log "importing $IMAGE"
old_image=$("$ENGINE" image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
tar -C "$rootfs" --numeric-owner -c . | "$ENGINE" import \
	--change 'CMD ["/sbin/init"]' --change "LABEL $label=$recipe" \
	- "$IMAGE" >/dev/null
# An outdated build of this tag, now untagged, is of no more use.
if [[ -n $old_image ]]; then "$ENGINE" rmi "$old_image" >/dev/null 2>&1 || true; fi
log "built $IMAGE in $((SECONDS - start))s"
echo "$IMAGE"
