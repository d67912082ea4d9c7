#!/usr/bin/env bash
# Check `make rename` end to end: rename a copy of this tree, then show that
# the copy is the working project of a service with the new name. It builds
# bin/NEW, passes go vet and the whole `make test`, and `make deb` packages
# NEW (binary /usr/bin/NEW, units NEW.*). No unit, script, Makefile or
# packaging line still names the old service, no file is named after it,
# and the old module path is gone. With HARNESS=1 the copy's package also
# runs under systemd (`make test-systemd` in the copy): systemd itself starts
# NEW.socket and NEW.service. With DROP=1 the copy also drops the example
# (`make drop-example`) after the rename, as a new service's first two
# commits do, and all of the above then holds for it: every kit test and
# scenario still there and passing.
#
# Your own tree is not changed: all of it happens in a copy.
#
#   bash tools/rename/check.sh       (make test-rename [HARNESS=1] [DROP=1])
#   NEW_NAME, NEW_MODULE   the rename (default: hello, or world in a project
#                          named hello; example.org/acme/NEW_NAME)
#   DIST                   the harness's Debian suite, with HARNESS=1
set -euo pipefail

GO=${GO:-go}
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
log() { printf 'test-rename: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

old=$(cd "$top/cmd" && ls -d -- */ | tr -d /)
[[ $(wc -w <<<"$old") == 1 ]] || fail "cmd/ holds more than one command: $old"
old_module=$(cd "$top" && "$GO" list -m)
# A name other than the one the tree has: hello, or world for a hello.
default=hello
[[ $old == hello ]] && default=world
NEW_NAME=${NEW_NAME:-$default}
NEW_MODULE=${NEW_MODULE:-example.org/acme/$NEW_NAME}

# The copy: what git tracks or would track in the working tree, as a clone
# of it committed would hold.
work=$(mktemp -d "${TMPDIR:-/tmp}/rename-check.XXXXXX")
trap 'rm -rf "$work"' EXIT
copy=$work/$NEW_NAME
mkdir -p "$copy"
(cd "$top" && git ls-files -z --cached --others --exclude-standard |
	while IFS= read -r -d '' f; do [[ -e $f ]] && printf '%s\0' "$f"; done |
	xargs -0 cp --parents -t "$copy")
git -C "$copy" init -q
git -C "$copy" add -A
git -C "$copy" -c user.name=check -c user.email=check@localhost commit -qm "the template"

log "renaming a copy of this tree, in $copy, from $old ($old_module) to $NEW_NAME ($NEW_MODULE); this tree stays as it is"
(cd "$copy" && "$GO" run ./tools/rename -name "$NEW_NAME" -module "$NEW_MODULE") >"$work/rename.log"
log "$(wc -l <"$work/rename.log") lines of changes, e.g.:"
head -5 "$work/rename.log" >&2

cd "$copy"
git add -A # as the rename's commit will hold it
if [[ ${DROP:-} == 1 ]]; then
	git -c user.name=check -c user.email=check@localhost commit -qm "the rename"
	log "make drop-example in the renamed copy"
	make --no-print-directory drop-example >"$work/drop.log"
	tail -2 "$work/drop.log" >&2
	git add -A
	[[ ! -e internal/example ]] || fail "make drop-example left internal/example"
fi
# Nothing left that names the old service where a name goes.
leftover=$(git ls-files -co --exclude-standard -- deploy packaging Makefile Dockerfile.test '*.sh' .ci |
	xargs grep -nE "(\b$old\.(service|socket)|\b$old-(metrics|standalone)|\b_$old\b|=$old\b|/$old\b|\b${old}_|:-$old\b|\?= *$old\b|\bcmd/$old\b)" || true)
[[ -z $leftover ]] || fail "still named $old:"$'\n'"$leftover"
# …nor in the docs, where the name stands in commands and in what they print.
leftover=$(git ls-files -co --exclude-standard -- README.md docs |
	xargs grep -nE "(\b$old\.(service|socket)\b|journalctl -u $old\b|systemctl [a-z-]+ $old\b|package $old\b|\($old\)|^$old: |/etc/$old\b|/var/lib/$old\b|\b${old}_[a-z])" || true)
[[ -z $leftover ]] || fail "the docs still name $old:"$'\n'"$leftover"
named=$(git ls-files -co --exclude-standard | grep -E "(^|/)$old([.-]|/|$)" || true)
[[ -z $named ]] || fail "files still named after $old:"$'\n'"$named"
if grep -rlF --exclude-dir=.git -- "$old_module" . >/dev/null; then
	fail "the old module path is still in: $(grep -rlF --exclude-dir=.git -- "$old_module" . | tr '\n' ' ')"
fi
[[ $("$GO" list -m) == "$NEW_MODULE" ]] || fail "go list -m says $("$GO" list -m)"

log "make build"
make --no-print-directory build >/dev/null
[[ -x bin/$NEW_NAME ]] || fail "make build made no bin/$NEW_NAME"
log "go vet"
"$GO" vet ./... && "$GO" vet -tags systemd ./...
log "make test"
make --no-print-directory test
log "make deb"
deb=$(make --no-print-directory deb | tail -1)
[[ $(dpkg-deb -f "$deb" Package) == "$NEW_NAME" ]] || fail "$deb: package $(dpkg-deb -f "$deb" Package), want $NEW_NAME"
contents=$(dpkg-deb -c "$deb")
for want in "./usr/bin/$NEW_NAME" "./usr/lib/systemd/system/$NEW_NAME.service" "./usr/lib/systemd/system/$NEW_NAME.socket" \
	"./usr/lib/systemd/system/$NEW_NAME-metrics.socket" "./etc/$NEW_NAME/config.toml"; do
	grep -qF -- " $want" <<<"$contents" || fail "$deb has no $want"
done

if [[ ${HARNESS:-} == 1 ]]; then
	# docs/walkthrough.md holds what the template's daemon prints, which
	# the harness compares with what runs; the renamed service prints its
	# own name (and, without the example, its own config.toml): its owner
	# makes the walkthrough again, as README says, and so does this check.
	log "make walkthrough in the renamed copy"
	make --no-print-directory walkthrough >"$work/walkthrough.log" 2>&1 ||
		{ tail -50 "$work/walkthrough.log" >&2; fail "make walkthrough failed in the renamed copy"; }
	log "make test-systemd (DIST=${DIST:-bookworm}) in the renamed copy"
	make --no-print-directory test-systemd DIST="${DIST:-bookworm}"
fi
log "ok: $NEW_NAME ($NEW_MODULE)${DROP:+, without the example,} builds, tests and packages"
