#!/usr/bin/env bash
# Static checks of the unit files in deploy/systemd/, run on the host by
# `make test`: no container and no running systemd needed, only
# systemd-analyze (package systemd).
#
#  1. systemd-analyze verify on each unit: unknown or malformed directives,
#     missing units it depends on, commands that do not exist. verify exits 0
#     after some of the problems it reports (an unknown key is only a
#     warning), so ANY output fails the check.
#  2. systemd-analyze security --offline=true --threshold=N on each service:
#     the sandbox's exposure score may not exceed the limit in
#     test/systemd/exposure-limits.
#
# verify checks that ExecStart=/usr/bin/NAME exists. So that the check
# needs no installed daemon, the units are checked inside a scratch root
# (--root=): a copy of this machine's own unit directory, our units in its
# /etc/systemd/system, the built binary (or an empty stand-in) at
# /usr/bin/NAME and this machine's copy of every other command the units run.
#
# Usage: bash test/systemd/check-units.sh
#   NAME    binary and unit name (default: daemon)
#   BINARY  the built daemon to place at /usr/bin/$NAME (default: bin/$NAME
#           if it exists, else an empty executable file, enough for verify)
set -euo pipefail

NAME=${NAME:-daemon}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/../.." && pwd)
units=$top/deploy/systemd
BINARY=${BINARY:-$top/bin/$NAME}

command -v systemd-analyze >/dev/null || { echo "check-units: systemd-analyze not found (apt-get install systemd)" >&2; exit 1; }
version=$(systemd-analyze --version | awk 'NR == 1 { print $2 }')

root=$(mktemp -d "${TMPDIR:-/tmp}/check-units.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd"
# Targets and other units ours refer to (sockets.target, sysinit.target...).
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"
cp "$units"/*.service "$units"/*.socket "$root/etc/systemd/system/"
# A drop-in that needs a newer systemd than this one (its first line says
# "# Needs systemd N or later.", as the package's postinst reads it) is not
# installed here, so it is not checked here.
for f in "$units"/*.d/*.conf; do
	[[ -f $f ]] || continue
	need=$(sed -n '1s/^# Needs systemd \([0-9]*\) or later\.$/\1/p' "$f")
	if [[ -n $need ]] && ! systemd-analyze compare-versions "$version" ge "$need"; then
		echo "skip: ${f#"$top"/} needs systemd >= $need (this is $version)"
		continue
	fi
	d=${f%/*}
	mkdir -p "$root/etc/systemd/system/${d##*/}"
	cp "$f" "$root/etc/systemd/system/${d##*/}/"
done

# Every command the units run, at the same path inside the scratch root.
sed -n 's/^Exec[A-Za-z]*=[-@:+!|]*\([^ ]*\).*/\1/p' "$units"/*.service | sort -u |
while read -r cmd; do
	[[ $cmd == /* ]] || { echo "FAIL: $cmd: commands in deploy/systemd must be absolute paths" >&2; exit 1; }
	mkdir -p "$root$(dirname "$cmd")"
	if [[ $cmd == /usr/bin/$NAME ]]; then
		if [[ -x $BINARY ]]; then cp "$BINARY" "$root$cmd"; else install -m 0755 /dev/null "$root$cmd"; fi
	elif [[ -e $cmd ]]; then
		cp -L "$cmd" "$root$cmd"
	fi # else: left missing, and verify says so
done

fail=0
for unit in "$root"/etc/systemd/system/*.service "$root"/etc/systemd/system/*.socket; do
	unit=${unit##*/}
	out=$(systemd-analyze verify --root="$root" --man=no "$unit" 2>&1) || true
	if [[ -n $out ]]; then
		echo "FAIL: systemd-analyze verify $unit:"
		sed 's/^/    /' <<<"$out"
		fail=1
	else
		echo "ok:   systemd-analyze verify $unit"
	fi
done

for unit in "$root"/etc/systemd/system/*.service; do
	unit=${unit##*/}
	key=NAME${unit#"$NAME"}
	limit=$(awk -v k="$key" '$1 == k { print $2 }' "$here/exposure-limits")
	if [[ -z $limit ]]; then
		echo "FAIL: $unit has no exposure limit in test/systemd/exposure-limits"
		fail=1
		continue
	fi
	rc=0
	out=$(systemd-analyze security --offline=true --root="$root" --threshold="$limit" "$unit" 2>&1) || rc=$?
	score=$(sed -n 's/^→ Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out")
	if ((rc != 0)) || [[ -z $score ]]; then
		echo "FAIL: $unit exposure ${score:-unknown} is above $((limit / 10)).$((limit % 10)):"
		grep -v '^  *✓\|^✓' <<<"$out" | sed 's/^/    /'
		fail=1
	else
		echo "ok:   $unit exposure $score <= $((limit / 10)).$((limit % 10))"
	fi
done
exit "$fail"
