#!/usr/bin/env bash
# Build the Debian package: the daemon, its units, its config, the
# maintainer scripts, and the documents Debian wants of every package (the
# copyright file, a changelog, a manual page), as packaging/nfpm.yaml lists
# them, described by the line in packaging/description, with nfpm (the version pinned below; `go run` fetches it, and
# go-md2man for the manual page, through the Go module proxy). Run by
# `make deb`, by packaging/lintian.sh, which checks the result with
# Debian's lintian, and by test/systemd/run.sh, which installs the package
# in its container with dpkg -i.
#
# Usage: bash packaging/deb.sh       (from anywhere; prints the .deb's path)
#   NAME        package, binary and unit name (default: daemon)
#   VERSION     package version (default: from git, see version below)
#   GOARCH      target architecture (default: go env GOARCH)
#   BINARY      a built daemon to package (default: built now, static and
#               stripped; lintian rejects an unstripped one)
#   OUT         directory for the .deb (default: bin in the repository, which
#               git ignores and `make clean` empties)
#   MAINTAINER  the package's Maintainer: field (default: from git config)
#   NFPM        the nfpm command (default: the pinned version, via go run)
#   MD2MAN      the go-md2man command (default: the pinned version, via go run)
#   SOURCE_DATE_EPOCH  the date of the changelog entry and the manual page
#               (default: the commit's date, so that a rebuild is the same)
set -euo pipefail

NAME=${NAME:-daemon}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
top=$(cd "$here/.." && pwd)
OUT=${OUT:-$top/bin}
NFPM=${NFPM:-go run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.45.2}
MD2MAN=${MD2MAN:-go run github.com/cpuguy83/go-md2man/v2@v2.0.7}

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }

# version prints the package version. Debian versions must start with a
# digit and sort in release order (dpkg --compare-versions), so:
#   tag v1.2.3 on this commit           1.2.3
#   4 commits after v1.2.3              1.2.3+4.gabc1234  (sorts after 1.2.3)
#   tag v1.2.3-rc1                      1.2.3~rc1         (sorts before 1.2.3)
#   no v* tag yet                       0.0.0+3.gabc1234  (3 commits since the
#                                       module got its path: a service started
#                                       from the template counts from its rename)
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
		# The commit that gave go.mod its module line: the template's first,
		# or a service's `make rename`. A service's own history starts there.
		local named n
		named=$(git -C "$top" log -1 --format=%H -G '^module ' -- go.mod)
		if [[ -n $named ]]; then
			n=$(git -C "$top" rev-list --count HEAD --not "$named^@")
		else
			n=$(git -C "$top" rev-list --count HEAD)
		fi
		echo "0.0.0+$n.g$(git -C "$top" rev-parse --short HEAD)$dirty"
	fi
}

VERSION=${VERSION:-$(version)}
GOARCH=${GOARCH:-$(go env GOARCH)}

# What the service is, in one line, written in one place: packaging/
# description. It becomes the package's synopsis (nfpm.yaml's description:
# what `apt show` and `dpkg -l` print) and the manual page's NAME line
# (what `apropos` and `man -k` search). nfpm expands $ in it, and Debian
# wants a synopsis of one short line (Debian Policy 3.4.1), so both are
# checked here rather than left to lintian.
DESCRIPTION=$(cat "$here/description")
if [[ -z $DESCRIPTION || $DESCRIPTION == *$'\n'* || $DESCRIPTION == *'$'* || ${#DESCRIPTION} -gt 79 ]]; then
	log "packaging/description: want one line of at most 79 characters, without \$, saying what the service is"
	exit 1
fi
if [[ -z ${MAINTAINER:-} ]]; then
	MAINTAINER="$(git -C "$top" config user.name 2>/dev/null || true) <$(git -C "$top" config user.email 2>/dev/null || true)>"
	# With no git identity (a fresh CI machine), a placeholder lintian
	# accepts: a name, and an address in .invalid (RFC 2606), which no mail
	# reaches; lintian rejects root and localhost. Set MAINTAINER for a
	# package anyone else installs.
	if [[ $MAINTAINER == " <>" ]]; then
		MAINTAINER="$NAME maintainers <$NAME@maintainer.invalid>"
		log "no git user.name and user.email: Maintainer: $MAINTAINER (set MAINTAINER)"
	fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/$NAME-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [[ -z ${BINARY:-} ]]; then
	# Static (no cgo), so that the one package runs on any Debian's C
	# library; -trimpath and the VCS stamp as in the Makefile's build.
	# Stripped, as Debian wants a packaged binary: -s drops the symbol
	# table, -w the DWARF debugging data (a panic's stack trace still names
	# functions, files and lines: Go keeps those in .gopclntab). -B gobuildid
	# adds a GNU build ID (`readelf -n`, `file`), derived from Go's own, to
	# tell builds apart. For a debugger, `make build` gives the same program
	# unstripped, with its symbols and DWARF data: bin/NAME.
	BINARY=$work/$NAME
	(cd "$top" && CGO_ENABLED=0 GOARCH=$GOARCH go build -buildvcs=auto -trimpath \
		-ldflags='-s -w -B gobuildid' -o "$BINARY" "./cmd/$NAME")
fi
BINARY=$(cd "$(dirname "$BINARY")" && pwd)/$(basename "$BINARY")

# --- The documents (DOCS, a directory nfpm.yaml takes them from) -----------
DOCS=$work/docs
mkdir -p "$DOCS"
# One date for the changelog entry and the manual page: the commit's, so
# that building the same commit twice gives the same documents.
if [[ -z ${SOURCE_DATE_EPOCH:-} ]]; then
	SOURCE_DATE_EPOCH=$(git -C "$top" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH

# The changelog. A version with no "-" is a native package's, and deb.sh
# makes no other (see version above): Debian wants its changelog as
# /usr/share/doc/NAME/changelog.gz, in the format of deb-changelog(5), the
# newest entry for this version. One entry: the package records no history
# but the commit it was built from (git log has the rest).
commit=$(git -C "$top" rev-parse --short=12 HEAD 2>/dev/null || true)
{
	printf '%s (%s) unstable; urgency=medium\n\n' "$NAME" "$VERSION"
	if [[ -n $commit ]]; then
		printf '  * Built by packaging/deb.sh from commit %s.\n\n' "$commit"
	else
		printf '  * Built by packaging/deb.sh.\n\n'
	fi
	printf ' -- %s  %s\n' "$MAINTAINER" "$(LC_ALL=C date -u -R -d "@$SOURCE_DATE_EPOCH")"
} | gzip -9n >"$DOCS/changelog.gz"

# The copyright file, machine-readable (DEP 5,
# https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/): the
# project under LICENSE, then each Go module linked into the binary, and
# the Go standard library and runtime, with the license each ships. A
# static binary carries their code, so the package carries their notices.
# deb_text prints a license text as a DEP 5 field continuation.
deb_text() { sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /' "$@"; }
# holders prints a file's copyright lines (with a year: not the Apache
# license's "Copyright [yyyy]" template), without the word Copyright.
holders() {
	sed -n -E 's/^[[:space:]]*Copyright[[:space:]]+((\([cC]\)|©)[[:space:]]*)?([0-9].*)$/\3/p' "$@" 2>/dev/null |
		sed -E 's/[[:space:]]*All rights reserved\.?$//; s/\.$//' | sort -u
}
# field prints its lines as one DEP 5 field: the first after the name, the
# others indented.
field() { awk -v f="$1" 'NR == 1 { print f ": " $0; next } { print " " $0 }'; }
{
	echo "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/"
	echo "Upstream-Name: $NAME"
	echo
	echo "Files: *"
	holders "$top/LICENSE" | field Copyright
	grep -qx 'MIT No Attribution' "$top/LICENSE" || { log "LICENSE is not MIT-0: change the License: line here"; exit 1; }
	echo "License: MIT-0"
	deb_text "$top/LICENSE"
	(cd "$top" && GOARCH=$GOARCH CGO_ENABLED=0 go list -deps -f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' "./cmd/$NAME") |
		sort -u | while read -r path ver dir; do
		lic=$(find "$dir" -maxdepth 1 \( -iname 'LICEN[CS]E*' -o -iname 'COPYING*' \) -print -quit)
		[[ -n $lic ]] || { log "module $path has no LICENSE file: add its terms to the copyright file by hand"; exit 1; }
		notices=$(find "$dir" -maxdepth 1 -iname 'NOTICE*')
		echo
		echo "Files: vendor/$path/*"
		who=$(holders "$lic" $notices)
		[[ -n $who ]] || who="the authors of $path"
		echo "$who" | field Copyright
		if grep -q 'Apache License' "$lic" && grep -q 'Version 2\.0' "$lic"; then
			echo "License: Apache-2.0"
			echo " On Debian systems, the full text of the Apache License, Version 2.0,"
			echo " is in /usr/share/common-licenses/Apache-2.0."
		elif grep -q 'Permission is hereby granted, free of charge' "$lic" && grep -q 'above copyright notice' "$lic"; then
			echo "License: Expat"
			deb_text "$lic"
		elif grep -q 'Redistribution and use in source and binary forms' "$lic"; then
			if grep -q 'Neither the name' "$lic"; then echo "License: BSD-3-clause"; else echo "License: BSD-2-clause"; fi
			deb_text "$lic"
		else
			log "module $path: unknown license in ${lic##*/}: name it in packaging/deb.sh"
			exit 1
		fi
		echo "Comment: Go module $path $ver, linked into /usr/bin/$NAME."
		if [[ -n $notices ]]; then
			echo " Its NOTICE file says:"
			deb_text $notices
		fi
	done
	goroot=$(go env GOROOT)
	echo
	echo "Files: vendor/golang.org/toolchain/*"
	holders "$goroot/LICENSE" | field Copyright
	echo "License: BSD-3-clause"
	deb_text "$goroot/LICENSE"
	echo "Comment: The Go standard library and runtime, $(go env GOVERSION), linked"
	echo " into /usr/bin/$NAME."
} >"$DOCS/copyright"

# The manual page, NAME(8), from its markdown source: the date, the version
# and the description filled in, then go-md2man (pinned above) turns it
# into roff (it drops HTML comments: markers in the source do not show). Its
# first line is the title, "% NAME 8 ...": a page for another name would
# be installed under the wrong one.
[[ -f $here/$NAME.8.md ]] || { log "no manual page source packaging/$NAME.8.md"; exit 1; }
head -1 "$here/$NAME.8.md" | grep -q "^% $NAME 8 " ||
	{ log "packaging/$NAME.8.md: the first line is not the title \"% $NAME 8 ...\""; exit 1; }
# (In the description, \, & and / would mean something to sed: escaped.)
sed -e "s/@DATE@/$(LC_ALL=C date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%d)/" -e "s/@VERSION@/$VERSION/" \
	-e "s/@DESCRIPTION@/$(printf '%s\n' "$DESCRIPTION" | sed -e 's/[\/&]/\\&/g')/" \
	"$here/$NAME.8.md" >"$DOCS/$NAME.8.md"
(cd "$top" && $MD2MAN -in "$DOCS/$NAME.8.md" -out "$DOCS/$NAME.8")
gzip -9n "$DOCS/$NAME.8"

mkdir -p "$OUT" "$work/out"
# nfpm names the file NAME_VERSION_ARCH.deb (Debian's arch name); build into
# an empty directory to learn the name without predicting the translation.
export NAME VERSION GOARCH BINARY MAINTAINER DOCS DESCRIPTION
(cd "$top" && $NFPM package --config packaging/nfpm.yaml --packager deb --target "$work/out/") >&2
deb=$(find "$work/out" -name '*.deb' -print -quit)
[[ -n $deb ]] || { log "nfpm made no .deb"; exit 1; }
mv "$deb" "$OUT/"
log "built $OUT/${deb##*/} ($VERSION)"
echo "$OUT/${deb##*/}"
