#!/usr/bin/env bash
# Build the Debian package: the daemon, its units, its config and the
# maintainer scripts, as packaging/nfpm.yaml lists them, with nfpm (the
# version pinned below; `go run` fetches it through the Go module proxy).
# Run by `make deb` and by test/systemd/run.sh, which installs the package
# in its container with dpkg -i.
#
# Usage: bash packaging/deb.sh       (from anywhere; prints the .deb's path)
#   NAME        package, binary and unit name (default: daemon)
#   VERSION     package version (default: from git, see version below)
#   GOARCH      target architecture (default: go env GOARCH)
#   BINARY      a built daemon to package (default: built now, static)
#   OUT         directory for the .deb (default: bin in the repository, which
#               git ignores and `make clean` empties)
#   MAINTAINER  the package's Maintainer: field (default: from git config)
#   NFPM        the nfpm command (default: the pinned version, via go run)
set -euo pipefail

NAME=${NAME:-daemon}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
OUT=${OUT:-$top/bin}
NFPM=${NFPM:-go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2}

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

# version prints the package version. Debian versions must start with a
# digit and sort in release order (dpkg --compare-versions), so:
#   tag v1.2.3 on this commit           1.2.3
#   4 commits after v1.2.3              1.2.3+4.gabc1234  (sorts after 1.2.3)
#   tag v1.2.3-rc1                      1.2.3~rc1         (sorts before 1.2.3)
#   no v* tag yet                       0.0.0+57.gabc1234 (57 commits so far)
#   uncommitted changes                 ... .dirty appended
#   no git (a module zip, gonew copy)   0.0.0
# The commit count keeps untagged builds in order; the hash says which.
version() {
	if ! git -C "$top" rev-parse --verify --quiet HEAD >/dev/null 2>&1; then
		echo 0.0.0
		return
	fi
	local d dirty=
	# (--no-optional-locks: a build must not write .git/index.)
	if git --no-optional-locks -C "$top" status --porcelain --untracked-files=no | grep -q .; then dirty=.dirty; fi
	if d=$(git -C "$top" describe --tags --match 'v[0-9]*' --long 2>/dev/null); then
		# v1.2.3-4-gabc1234: tag, commits since, hash.
		local hash=${d##*-} rest=${d%-*}
		local n=${rest##*-} tag=${rest%-*}
		# A - in a Debian version separates the Debian revision; ~ sorts
		# before anything, as a pre-release should (git refuses ~ in tags).
		tag=${tag#v}
		tag=${tag//-/\~}
		if ((n == 0)) && [[ -z $dirty ]]; then echo "$tag"; else echo "$tag+$n.$hash$dirty"; fi
	else
		echo "0.0.0+$(git -C "$top" rev-list --count HEAD).g$(git -C "$top" rev-parse --short HEAD)$dirty"
	fi
}

VERSION=${VERSION:-$(version)}
GOARCH=${GOARCH:-$(go env GOARCH)}
if [[ -z ${MAINTAINER:-} ]]; then
	MAINTAINER="$(git -C "$top" config user.name 2>/dev/null || true) <$(git -C "$top" config user.email 2>/dev/null || true)>"
	[[ $MAINTAINER == " <>" ]] && MAINTAINER="$NAME maintainers <root@localhost>"
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/$NAME-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [[ -z ${BINARY:-} ]]; then
	# Static (no cgo), so that the one package runs on any Debian's C
	# library; -trimpath and the VCS stamp as in the Makefile's build.
	BINARY=$work/$NAME
	(cd "$top" && CGO_ENABLED=0 GOARCH=$GOARCH go build -buildvcs=auto -trimpath -o "$BINARY" "./cmd/$NAME")
fi
BINARY=$(cd "$(dirname "$BINARY")" && pwd)/$(basename "$BINARY")

mkdir -p "$OUT" "$work/out"
# nfpm names the file NAME_VERSION_ARCH.deb (Debian's arch name); build into
# an empty directory to learn the name without predicting the translation.
export NAME VERSION GOARCH BINARY MAINTAINER
(cd "$top" && $NFPM package --config packaging/nfpm.yaml --packager deb --target "$work/out/") >&2
deb=$(find "$work/out" -name '*.deb' -print -quit)
[[ -n $deb ]] || { log "nfpm made no .deb"; exit 1; }
mv "$deb" "$OUT/"
log "built $OUT/${deb##*/} ($VERSION)"
echo "$OUT/${deb##*/}"
