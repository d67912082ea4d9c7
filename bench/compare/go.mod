module example.com/daemon/bench/compare

go 1.26.0

require (
	example.com/daemon v0.0.0
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/systemd/slog-journal v0.1.2
)

require golang.org/x/sys v0.50.0 // indirect

// The kit in this checkout, not a published version of it.
replace example.com/daemon => ../..
