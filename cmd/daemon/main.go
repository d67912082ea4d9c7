// Command daemon is an HTTP service that cooperates with systemd: socket
// activation, readiness, reload, watchdog and a clean stop. The order of
// its life is in internal/lifecycle, the process around it (flags,
// configuration, logs, metrics) in internal/service; the service itself is
// internal/example until `make drop-example` plugs in internal/app, where
// yours goes. This file plugs the one into the others.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	app "example.com/daemon/internal/example"
	"example.com/daemon/internal/lifecycle"
	"example.com/daemon/internal/service"
	"example.com/daemon/internal/systemd"
)

func main() {
	// Signals first of all: from here on a SIGTERM or a SIGHUP waits for
	// the lifecycle to answer it, even one sent while the configuration is
	// read; one not yet caught would end the process at once, SIGHUP's
	// default action too (docs/lifecycle.md, step 1).
	signals := lifecycle.CatchSignals()
	// What systemd passed (the notify socket, the listening sockets, the
	// watchdog) is taken once and removed from the environment, so that
	// no child inherits it; from here on it is an argument.
	passed, err := systemd.Take()
	if err == nil {
		err = run(context.Background(), os.Args, os.Getenv, signals, passed, os.Stdout, os.Stderr)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		os.Exit(service.ExitCode(err))
	}
}

// run is the whole program; main only hands it the outside world.
func run(ctx context.Context, args []string, getenv func(string) string, signals lifecycle.Signals, passed systemd.Passed, stdout, stderr io.Writer) error {
	return service.Run(ctx, service.AppSpec[app.Config]{
		AppDefaults:   app.DefaultConfig,
		NeedsStateDir: app.NeedsStateDir,
		New:           app.New,
	}, args, getenv, signals, passed, stdout, stderr)
}
