# The binary, its units, its user, its package and its metrics share one
# name. `make rename` changes it everywhere (and the module path with it).
NAME    ?= daemon
BIN     := bin/$(NAME)
GO      ?= go
# -buildvcs records the commit in the binary, for -version.
GOBUILD := $(GO) build -buildvcs=auto -trimpath

FUZZTIME ?= 20s
GOLANGCI_LINT ?= $(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v2.15.0

# The kit: what every service has, whatever its app. It must build and test
# without any app, so that neither dropping the example nor rewriting
# internal/app breaks it.
KIT     := ./internal/lifecycle ./internal/service/... ./internal/auth ./internal/config ./internal/metrics ./internal/logging ./internal/journald/... ./internal/systemd/... ./internal/tlscreds/...

.PHONY: help build run deps docs test test-units test-seam test-deb race rename test-rename test-systemd walkthrough test-vm deb bench fuzz lint clean
.PHONY: drop-example # example:line

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-14s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

build: ## build bin/$(NAME)
	$(GOBUILD) -o $(BIN) ./cmd/$(NAME)

run: build ## run the daemon locally on 127.0.0.1:8080, state in ./var, the API token in ./var/credentials
	mkdir -p var/credentials
	test -s var/credentials/api-token || { umask 077; od -An -vtx1 -N32 /dev/urandom | tr -d ' \n' >var/credentials/api-token; }
	CREDENTIALS_DIRECTORY=$(CURDIR)/var/credentials $(BIN) -config deploy/config.toml -state-dir var -log-format text

deps: ## install what make test needs (as root, from Debian's packages), or say what to install
	@bash tools/deps.sh

docs: ## write the settings' tables in README.md and the manual page, and deploy/config.toml, from their descriptions in the code
	$(GO) run ./tools/docs

test: deps build test-units test-seam test-deb test-alerts ## vet, check formatting, run the tests, check the units, the seam and the package
	@test -z "$$(gofmt -l cmd internal test tools bench)" || { gofmt -l cmd internal test tools bench; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) vet -tags systemd ./...
	@# The daemon runs unchanged outside systemd: it builds where systemd is not.
	GOOS=darwin $(GO) build -o /dev/null ./cmd/... ./internal/...
	GOOS=freebsd $(GO) build -o /dev/null ./cmd/... ./internal/...
	$(GO) mod tidy -diff
	@# bench/compare is a module of its own: ./... stops at its go.mod. A
	@# copy made with gonew has none (a module zip leaves nested modules out).
	if [ -f bench/compare/go.mod ]; then cd bench/compare && $(GO) vet ./... && $(GO) mod tidy -diff; fi
	$(GO) test -count=1 ./...

test-seam: ## check that the kit, its tests included, depends on no app: not internal/app, not the example
	@mod=$$($(GO) list -m); apps="^$$mod/internal/(app|example)(/|$$)"; \
	deps=$$($(GO) list -deps -test $(KIT)) || exit 1; \
	if printf '%s\n' "$$deps" | sed 's/ \[.*//' | grep -qE "$$apps"; then \
		echo "test-seam: the kit depends on an app:"; $(GO) list -deps -test -f '{{.ImportPath}}: {{join .Imports " "}}' $(KIT) | grep -E "$$mod/internal/(app|example)"; exit 1; \
	fi

test-deb: ## build the Debian package and check it with lintian: no errors, no warnings
	NAME=$(NAME) bash packaging/lintian.sh

race: ## run the tests under the race detector
	$(GO) test -race -count=1 ./...

rename: ## make the template yours: make rename NAME=hello MODULE=example.org/you/hello
	@test -n "$(MODULE)" || { echo "rename: give NAME= and MODULE=, e.g. make rename NAME=hello MODULE=example.org/you/hello"; exit 2; }
	$(GO) run ./tools/rename -name "$(NAME)" -module "$(MODULE)"

# example:begin
drop-example: ## delete the example service and all that is only its, and run internal/app in its place
	$(GO) run ./tools/example_drop
# example:end

test-rename: ## rename a copy of the tree and check that it builds, tests and packages (HARNESS=1: and runs under systemd; DROP=1: without the example)
	HARNESS=$(HARNESS) DROP=$(DROP) GO=$(GO) bash tools/rename/check.sh

test-alerts: ## check the alerting rules in deploy/prometheus and run their unit tests, with promtool
	promtool check rules deploy/prometheus/$(NAME).rules.yml
	promtool test rules deploy/prometheus/$(NAME).rules.test.yml

test-units: build ## the shipped config is valid; systemd-analyze verify and security on deploy/systemd
	$(BIN) -check-config -config deploy/config.toml
	NAME=$(NAME) BINARY=$(BIN) bash test/systemd/check-units.sh

DIST ?= bookworm

test-systemd: ## run the scenarios under real systemd in a container (DIST=bookworm or trixie)
	NAME=$(NAME) DIST=$(DIST) bash test/systemd/run.sh

# On Debian 12's systemd 252, whatever DIST says: the doc says which systemd
# its outputs are from, and is compared on that one only.
walkthrough: ## run docs/walkthrough.md's commands under systemd 252 in the container and write their outputs into it
	NAME=$(NAME) DIST=bookworm WALKTHROUGH_OUT=$(CURDIR)/docs/walkthrough.md bash test/systemd/run.sh -test.run '^TestWalkthrough$$'

test-vm: ## run the scenarios on a qemu VM: Debian forky, systemd 262, cgroup v2 (as root)
	NAME=$(NAME) bash test/vm/run.sh

deb: ## build the Debian package bin/$(NAME)_VERSION_ARCH.deb with nfpm (packaging/)
	NAME=$(NAME) bash packaging/deb.sh

bench: ## measure the daemon against bare baselines (docs/performance.md)
	NAME=$(NAME) GO=$(GO) bash bench/run.sh

lint: ## golangci-lint (the version pinned above) with .golangci.yml
	$(GOLANGCI_LINT) run ./...

fuzz: ## run each fuzz target for FUZZTIME (default 20s)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./internal/config
	$(GO) test -run '^$$' -fuzz '^FuzzEncodeRoundTrip$$' -fuzztime $(FUZZTIME) ./internal/journald

clean: ## remove what the build made
	rm -rf bin var
