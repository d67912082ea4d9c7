#!/usr/bin/env bash
# What each sandbox directive of the service units is worth, measured:
# for every [Service] directive of each unit, remove all its lines, rate the
# unit with `systemd-analyze security --offline=true`, and print how much
# the exposure rises and which of systemd-analyze's checks then fail. Then
# the same for the ways to loosen a unit that docs/hardening.md describes.
# Prints Markdown; docs/hardening.md holds its output for systemd 252 and
# 257.
#
# Usage: bash test/systemd/exposure-by-directive.sh
#   NAME     binary and unit name (default: daemon)
#   UNITDIR  where the units are (default: deploy/systemd in the repository)
#
# It needs only systemd-analyze, and rates the systemd it finds. For 257 on
# a 252 host, in the harness's trixie container (KEEP=1 leaves it running):
#   podman exec -i CONTAINER env UNITDIR=/usr/lib/systemd/system \
#       bash -s <test/systemd/exposure-by-directive.sh
#
# Each unit is rated alone, without the shipped drop-ins (none of which
# changes the sandbox), from a copy in a scratch directory.
set -euo pipefail

NAME=${NAME:-daemon}
here=$(dirname "${BASH_SOURCE[0]:-.}")
UNITDIR=${UNITDIR:-$here/../../deploy/systemd}

command -v systemd-analyze >/dev/null || { echo "systemd-analyze not found (apt-get install systemd)" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/exposure.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The directives that say how the service runs, not what it may touch: not
# measured (and a unit without ExecStart= cannot be rated at all).
lifecycle=" Type NotifyAccess ExecStart ExecReload WatchdogSec Restart RestartPreventExitStatus TimeoutStopSec FileDescriptorStoreMax StateDirectory ConfigurationDirectory "

# rate FILE prints the overall exposure, then the names of the checks that
# fail (the lines marked ✗), one a line.
rate() {
	local out
	out=$(systemd-analyze security --offline=true --no-pager "$1" 2>/dev/null) || true
	sed -n 's/^→ Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' <<<"$out"
	sed -n 's/^✗ \([^ ]*\) .*/\1/p' <<<"$out" | sort
}

# checks KEY prints the check names on stdin as one Markdown table cell:
# those named after KEY shortened to what follows "KEY=", | escaped.
checks() {
	awk -v k="$1=" '
		NF { n++; x = $0; if (index(x, k) == 1 && length(x) > length(k)) x = substr(x, length(k) + 1); gsub(/\|/, "\\|", x); out = out (n > 1 ? ", " : "") x }
		END { printf "%s", out }'
}

# measure KEY LABEL FILE BASE_SCORE BASE_FAILS prints one table row.
measure() {
	local key=$1 label=$2 file=$3 base=$4 basefails=$5 rated score fails
	rated=$(rate "$file")
	score=$(head -1 <<<"$rated")
	fails=$(tail -n +2 <<<"$rated")
	printf '| %s | %s | %+.1f | %s |\n' "$label" "$score" \
		"$(awk -v a="$score" -v b="$base" 'BEGIN { print a - b }')" \
		"$(comm -13 <(echo "$basefails") <(echo "$fails") | checks "$key")"
}

# variant UNIT SED-SCRIPT: a copy of the unit edited by sed.
variant() {
	local dir
	dir=$(mktemp -d "$work/v.XXXX")
	sed "$2" "$1" >"$dir/${1##*/}"
	echo "$dir/${1##*/}"
}

echo "systemd $(systemd-analyze --version | awk 'NR == 1 { print $2 }')"
for unit in "$UNITDIR/$NAME.service" "$UNITDIR/$NAME"-*.service; do
	[[ -f $unit ]] || continue
	u=${unit##*/}
	mkdir -p "$work/base"
	cp "$unit" "$work/base/$u"
	rated=$(rate "$work/base/$u")
	base=$(head -1 <<<"$rated")
	basefails=$(tail -n +2 <<<"$rated")
	echo
	echo "### $u: $base"
	echo
	echo "Checks that fail as shipped: $(checks - <<<"$basefails")"
	echo
	echo "| without | exposure | change | checks that then fail too |"
	echo "|---|---|---|---|"
	# The [Service] keys, in the order of the file, each once.
	keys=$(awk '/^\[/ { s = $0 } s == "[Service]" && /^[A-Za-z]+=/ { sub(/=.*/, ""); if (!seen[$0]++) print }' "$unit")
	for key in $keys; do
		[[ $lifecycle == *" $key "* ]] && continue
		measure "$key" "$key=" "$(variant "$work/base/$u" "/^$key=/d")" "$base" "$basefails"
	done
done

# How to loosen the socket-activated unit for outbound connections: the
# drop-ins docs/hardening.md shows, rated with the unit (systemd-analyze
# reads UNIT.d/ next to a unit file it is given).
# recipe UNIT LABEL DROP-IN-TEXT prints one table row.
recipe() {
	local dir
	dir=$(mktemp -d "$work/r.XXXX")
	cp "$work/base/$1" "$dir/"
	mkdir "$dir/$1.d"
	printf '%b' "$3" >"$dir/$1.d/loosen.conf"
	measure - "$2" "$dir/$1" "$base" "$basefails"
}
if [[ -f $UNITDIR/$NAME.service ]]; then
	rated=$(rate "$work/base/$NAME.service")
	base=$(head -1 <<<"$rated")
	basefails=$(tail -n +2 <<<"$rated")
	echo
	echo "### Loosening $NAME.service for outbound connections"
	echo
	echo "| drop-in | exposure | change | checks that then fail too |"
	echo "|---|---|---|---|"
	recipe "$NAME.service" "A: one address" '[Service]\nPrivateNetwork=no\nRestrictAddressFamilies=AF_INET AF_INET6\nIPAddressAllow=192.0.2.10\n'
	recipe "$NAME.service" "B: anywhere" '[Service]\nPrivateNetwork=no\nRestrictAddressFamilies=AF_INET AF_INET6\nIPAddressDeny=\n'
	recipe "$NAME.service" "C: own network namespace off, nothing else" '[Service]\nPrivateNetwork=no\n'
fi
if [[ -f $UNITDIR/$NAME-standalone.service ]]; then
	rated=$(rate "$work/base/$NAME-standalone.service")
	base=$(head -1 <<<"$rated")
	basefails=$(tail -n +2 <<<"$rated")
	echo
	echo "### Loosening $NAME-standalone.service to bind a port below 1024 itself"
	echo
	echo "| drop-in | exposure | change | checks that then fail too |"
	echo "|---|---|---|---|"
	recipe "$NAME-standalone.service" "D: CAP_NET_BIND_SERVICE, PrivateUsers=no" '[Service]\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\nPrivateUsers=no\n'
fi
