#!/usr/bin/env bash
# Check the Debian package with lintian, Debian's own package checker: build
# it with packaging/deb.sh (as `make deb` does), then run lintian on it and
# fail on any error or warning. Tags the package overrides, each with its
# reason, are in packaging/lintian-overrides (installed as
# /usr/share/lintian/overrides/NAME, where lintian reads them); they are
# listed (O:, with the reason as N:), as are the informational tags (I:),
# but do not fail the check.
#
# Usage: bash packaging/lintian.sh [DEB]   (from anywhere)
#   DEB         a package to check instead of building one now
#   NAME        package, binary and unit name (default: daemon), for deb.sh
# Needs: lintian (apt-get install lintian; Debian 12 has 2.116), and what
# deb.sh needs (go).
set -euo pipefail

NAME=${NAME:-daemon}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

command -v lintian >/dev/null || { log "lintian is not installed: apt-get install lintian"; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/$NAME-lintian.XXXXXX")
trap 'rm -rf "$work"' EXIT

deb=${1:-}
if [[ -z $deb ]]; then
	deb=$(NAME=$NAME OUT=$work bash "$here/deb.sh" 2>"$work/deb.log") ||
		{ cat "$work/deb.log" >&2; log "building the package failed"; exit 1; }
fi

# --fail-on error,warning: the exit status is non-zero when any error or
# warning is left after the overrides (info and pedantic tags never fail).
# --display-info prints the informational tags too, so that the log says
# what lintian thought of everything. Root gets a notice on stderr
# ("running with root privileges is not recommended"), which is dropped.
quiet_root() { grep -v 'running with root privileges is not recommended' "$1" >&2 || true; }
rc=0
lintian --fail-on error,warning --display-info "$deb" >"$work/lintian.out" 2>"$work/lintian.err" || rc=$?
quiet_root "$work/lintian.err"
cat "$work/lintian.out"
# The overridden tags, with their reasons (N:), in a second run: lintian
# 2.116 counts a shown override towards --fail-on, so not in the first.
lintian --fail-on none --show-overrides "$deb" 2>"$work/lintian.err" | grep -E '^(O|N): ' || true
quiet_root "$work/lintian.err"
errors=$(grep -c '^E: ' "$work/lintian.out" || true)
warnings=$(grep -c '^W: ' "$work/lintian.out" || true)
# One summary line in the form CI reads: "word: N passed, N failed".
if ((rc != 0 || errors + warnings > 0)); then
	echo "lintian: 0 passed, 1 failed ($errors errors, $warnings warnings; lintian exit $rc) for ${deb##*/}"
	exit 1
fi
echo "lintian: 1 passed, 0 failed for ${deb##*/}"
