// Command daemon is an example HTTP service that cooperates with systemd:
// socket activation, readiness, reload, watchdog and a clean stop. The order
// of its life is in internal/lifecycle; this file wires the parts together.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/daemon/internal/app"
	"example.com/daemon/internal/config"
	"example.com/daemon/internal/lifecycle"
	"example.com/daemon/internal/logging"
	"example.com/daemon/internal/metrics"
	"example.com/daemon/internal/systemd"
)

// Exit statuses. A unit names exitConfig in RestartPreventExitStatus=, so a
// daemon that cannot start because of its configuration is not restarted in
// a loop: restarting cannot fix a file.
const (
	exitFailure = 1  // anything else that went wrong
	exitUsage   = 2  // bad command line, as the flag package does
	exitConfig  = 78 // EX_CONFIG from sysexits.h: the configuration is wrong
)

func main() {
	ctx := context.Background()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", filepath.Base(os.Args[0]), err)
		os.Exit(exitCode(err))
	}
}

// run is the whole program; main only hands it the outside world.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	name := filepath.Base(args[0])
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", defaultConfigPath(getenv), "configuration `file`")
	listenAddr := flags.String("listen", "", "`address` to listen on when systemd passes no socket (default: the config's listen, 127.0.0.1:8080)")
	stateDir := flags.String("state-dir", firstDir(getenv("STATE_DIRECTORY")), "`directory` for state (default: $STATE_DIRECTORY, set by systemd's StateDirectory=)")
	metricsAddr := flags.String("metrics-listen", "", "`address` to serve /metrics on when systemd passes no socket named metrics (default: on the main listener)")
	fdStore := flags.Bool("fd-store", false, "hand the listener this process opens to systemd's FD store (the unit needs FileDescriptorStoreMax=); systemd ≥ 254 says so itself with $FDSTORE")
	logFormat := flags.String("log-format", "", "where logs go: auto, journal, text or json (default: the config's log_format, auto)")
	checkConfig := flags.Bool("check-config", false, "check the configuration file and exit")
	showVersion := flags.Bool("version", false, "print the version and exit")
	if err := flags.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return usageError{err}
	}
	if flags.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(flags.Args(), " "))}
	}
	if *showVersion {
		fmt.Fprintln(stdout, version(name))
		return nil
	}
	explicitConfig := false
	flags.Visit(func(f *flag.Flag) { explicitConfig = explicitConfig || f.Name == "config" })

	// The configuration is checked before anything else happens, so that a
	// bad file stops the start with a message naming the line and key.
	load := func() (config.Config, error) { return loadConfig(*configPath, explicitConfig) }
	cfg, err := load()
	if err != nil {
		return err
	}
	if *checkConfig {
		fmt.Fprintf(stdout, "%s: configuration ok\n", *configPath)
		return nil
	}
	if *stateDir == "" {
		return usageError{errors.New("no state directory: pass -state-dir, or run under systemd with StateDirectory=")}
	}

	// Logs go to the journal when systemd connected stderr to it, else to
	// stderr. The level is a variable so that a reload can change it.
	format := cfg.LogFormat.String()
	if *logFormat != "" {
		format = *logFormat
	}
	f, err := logging.ParseFormat(format)
	if err != nil {
		return usageError{err}
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel.Level)
	logger, err := logging.New(logging.Options{
		Format: f, Level: level, Identifier: name, Getenv: getenv, Stderr: stderr,
	})
	if err != nil {
		return err
	}

	// The notify socket is for this process alone: with NotifyAccess=main
	// systemd ignores anyone else, so a child that inherited NOTIFY_SOCKET
	// could only confuse matters. Read it once, then drop it from the
	// environment; the Notifier keeps the address for later watchdog pings.
	notifier := systemd.NewNotifier(getenv("NOTIFY_SOCKET"))
	os.Unsetenv("NOTIFY_SOCKET")
	watchdog, err := systemd.WatchdogInterval(getenv, os.Getpid())
	if err != nil {
		return err
	}
	listeners, err := systemd.ActivatedListeners()
	if err != nil {
		return err
	}

	// A registry of our own, not client_golang's global one: everything
	// the daemon measures is passed to where it is measured.
	m := metrics.New(prometheus.NewRegistry(), buildInfo())
	a, err := app.New(logger, cfg, m, *stateDir)
	if err != nil {
		return err
	}
	listen := cfg.Listen.String()
	if *listenAddr != "" {
		listen = *listenAddr
	}
	return lifecycle.Run(ctx, lifecycle.Daemon{
		Logger:        logger,
		Notifier:      notifier,
		Listeners:     listeners,
		Listen:        listen,
		MetricsListen: *metricsAddr,
		HTTP:          cfg.HTTP,
		Metrics:       m,
		StoreListener: *fdStore || getenv("FDSTORE") != "",
		Watchdog:      watchdog,
		App:           a,
		Reload: func() error {
			next, err := load()
			if err != nil {
				return err
			}
			// The socket is opened once; a new address needs a restart
			// (or, with socket activation, a change to the .socket unit).
			if next.Listen != cfg.Listen && *listenAddr == "" {
				logger.Warn("listen changed; it takes effect at the next start",
					"listen", cfg.Listen.String(), "new_listen", next.Listen.String())
			}
			if next.LogFormat != cfg.LogFormat && *logFormat == "" {
				logger.Warn("log_format changed; it takes effect at the next start",
					"log_format", cfg.LogFormat.String(), "new_log_format", next.LogFormat.String())
			}
			level.Set(next.LogLevel.Level)
			a.Apply(next)
			cfg = next
			return nil
		},
		DrainTimeout: func() time.Duration { return cfg.DrainTimeout.Duration },
	})
}

// defaultConfigPath is config.toml in the directory systemd's
// ConfigurationDirectory= names, else in /etc/daemon.
func defaultConfigPath(getenv func(string) string) string {
	if dir := firstDir(getenv("CONFIGURATION_DIRECTORY")); dir != "" {
		return filepath.Join(dir, "config.toml")
	}
	return "/etc/daemon/config.toml"
}

// firstDir returns the first of the colon-separated directories systemd
// passes when a *Directory= setting names more than one.
func firstDir(dirs string) string {
	dir, _, _ := strings.Cut(dirs, ":")
	return dir
}

// loadConfig reads the configuration. A missing file means the built-in
// defaults, unless the file was named with -config: then it is a mistake.
func loadConfig(path string, explicit bool) (config.Config, error) {
	cfg, err := config.Load(path)
	if errors.Is(err, fs.ErrNotExist) && !explicit {
		return config.Default(), nil
	}
	if err != nil {
		return config.Config{}, configError{err}
	}
	return cfg, nil
}

type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// exitCode maps an error from run to the process's exit status.
func exitCode(err error) int {
	var ce configError
	var ue usageError
	switch {
	case errors.As(err, &ce):
		return exitConfig
	case errors.As(err, &ue):
		return exitUsage
	}
	return exitFailure
}

// buildInfo describes the build from what the Go toolchain recorded in it:
// the module version, the commit (when built from a checkout with
// -buildvcs) and the Go version.
func buildInfo() metrics.Build {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return metrics.Build{Version: "unknown", Revision: "unknown", GoVersion: runtime.Version()}
	}
	b := metrics.Build{Version: info.Main.Version, Revision: "unknown", GoVersion: info.GoVersion}
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			b.Revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified {
		b.Revision += "+modified"
	}
	return b
}

func version(name string) string {
	b := buildInfo()
	return fmt.Sprintf("%s %s commit %s %s", name, b.Version, b.Revision, b.GoVersion)
}
