#!/usr/bin/env bash
# Install what `make test` needs that a fresh Debian machine lacks, from
# Debian's packages, when it runs as root with apt; otherwise name the one
# apt-get line to run, and fail. Then make sure a journald answers, since
# the journald tests send to a real one: where systemd is not PID 1 (a
# container, a CI machine) and this runs as root, start one standalone.
#
#   bash tools/deps.sh          (make deps; make test runs it first)
set -euo pipefail

# command -> the Debian package that has it.
declare -A pkg=(
	[lintian]=lintian                 # packaging/lintian.sh
	[systemd-analyze]=systemd         # test/systemd/check-units.sh
	[systemd-socket-activate]=systemd # the process tests
	[journalctl]=systemd              # the journald tests
	[promtool]=prometheus             # the metrics' exposition checked by Prometheus's own parser
	[git]=git                         # make rename, make drop-example and their tests
	[slowhttptest]=slowhttptest       # the slowloris test (internal/service)
	[testssl]=testssl.sh              # the HTTPS listener checked by a TLS scanner (internal/service)
	[openssl]=openssl                 # openssl s_client against it
	[curl]=curl                       # curl --http2 against it
)
missing=()
for cmd in "${!pkg[@]}"; do
	command -v "$cmd" >/dev/null || missing+=("${pkg[$cmd]}")
done
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u | sed '/^$/d')
if ((${#missing[@]})); then
	if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
		echo "deps: installing ${missing[*]}" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq
		apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	else
		echo "deps: missing; install with: sudo apt-get install ${missing[*]}" >&2
		exit 1
	fi
fi

if ! journalctl --sync 2>/dev/null; then
	if [[ $(id -u) == 0 && -x /lib/systemd/systemd-journald ]]; then
		echo "deps: no journald answers; starting one standalone" >&2
		setsid /lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 &
		for _ in $(seq 100); do journalctl --sync 2>/dev/null && break; sleep 0.1; done
	fi
	journalctl --sync 2>/dev/null || { echo "deps: no journald answers (the journald tests need one; run as root, or under systemd)" >&2; exit 1; }
fi
