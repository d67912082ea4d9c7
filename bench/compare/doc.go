// Package compare holds the benchmarks that measure the kit's parts against
// other libraries made for the same job: the journald handler against
// github.com/systemd/slog-journal and go-systemd's journal.Send
// (docs/logging-bench.md).
//
// It is a module of its own, so that the libraries it compares with are
// not in the service's go.mod: a service's go.mod lists only what the
// service links. The replace directive in go.mod builds it against the
// kit in this checkout. Run it from this directory:
//
//	cd bench/compare && go test -run '^$' -bench . -benchmem
//
// bench/run.sh (make bench) runs it, and make test vets it and checks that
// its go.mod is tidy. A module zip leaves out the modules nested in it, so
// a project started with gonew has no bench/compare; both skip it then.
package compare
