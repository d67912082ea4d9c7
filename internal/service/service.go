// Package service is the process around the lifecycle: the command line,
// the configuration file, the logger and the metrics registry, built in
// that order and passed to the app and to lifecycle.Run; and the exit
// status. A service's main hands Run the outside world and its app.
package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"example.com/daemon/internal/auth"
	"example.com/daemon/internal/config"
	"example.com/daemon/internal/lifecycle"
	"example.com/daemon/internal/logging"
	"example.com/daemon/internal/metrics"
	"example.com/daemon/internal/systemd"
	"example.com/daemon/internal/tlscreds"
)

// Exit statuses. A unit names ExitConfig in RestartPreventExitStatus=, so a
// daemon that cannot start because of its configuration is not restarted in
// a loop: restarting cannot fix a file.
const (
	ExitFailure = 1  // anything else that went wrong
	ExitUsage   = 2  // bad command line, as the flag package does
	ExitConfig  = 78 // EX_CONFIG from sysexits.h: the configuration is wrong
)

// App is an app as Run takes it: what the lifecycle runs (lifecycle.App),
// and Apply. C is the app's part of the configuration file, a type that
// only the app and this package need to know.
type App[C any] interface {
	lifecycle.App
	// Apply takes the app's settings from a configuration reloaded on
	// SIGHUP, once all of the reload was found valid.
	Apply(C)
}

// AppSpec is what Run needs to know of an app to run it: its default
// settings, whether it needs a state directory, and how to make it. C is
// the app's part of the configuration file.
type AppSpec[C any] struct {
	// AppDefaults returns the app's settings as they are before the file is
	// read; nil means C's zero value.
	AppDefaults func() C
	// NeedsStateDir makes the daemon refuse to start without a state
	// directory (-state-dir, or StateDirectory= in the unit).
	NeedsStateDir bool
	// New builds the app from what Run made for it.
	New func(Deps[C]) (App[C], error)
}

// Deps are what Run makes for the app: everything the app needs from
// outside comes in here, never from a global.
type Deps[C any] struct {
	Logger *slog.Logger
	// Registry is the daemon's Prometheus registry, served on /metrics; the
	// app may register metrics of its own on it.
	Registry *prometheus.Registry
	// Config is the app's part of the configuration read at start.
	Config C
	// StateDir is where the app keeps state; empty when none was given.
	StateDir string
	// Credentials are the secrets systemd passed the unit (LoadCredential=
	// and the like), read by name.
	Credentials systemd.Credentials
	// Token is the API token, from the credential api-token: wrap a route
	// in Token.Require and it needs Authorization: Bearer with it. The
	// lifecycle reads it at start and at every reload.
	Token *auth.Token
}

// Run is the whole program: it reads the command line and the configuration,
// builds the logger, the metrics and the app, and runs the lifecycle. args,
// getenv, the signals main caught, what systemd passed and the two streams
// are all it knows of the process.
func Run[C any](ctx context.Context, s AppSpec[C], args []string, getenv func(string) string, signals lifecycle.Signals, passed systemd.Passed, stdout, stderr io.Writer) (err error) {
	// A daemon that cannot start (a bad file, a port in use, state it
	// cannot read), or that stops on an error, says why where `systemctl
	// status` shows it, as well as on stderr: STATUS= with the reason, and
	// ERRNO= when an errno is at the bottom of it (sd_notify(3)). systemd
	// keeps both (StatusText, StatusErrno) until the unit starts again.
	// A lost message costs nothing more: the error goes to stderr too.
	defer func() {
		if err != nil {
			_ = passed.Notifier.Notify(systemd.Failed(err))
		}
	}()
	name := filepath.Base(args[0])
	flags := flag.NewFlagSet(name, flag.ContinueOnError)
	flags.SetOutput(stderr)
	configPath := flags.String("config", defaultConfigPath(name, getenv), "configuration `file`")
	var listen config.Address
	flags.TextVar(&listen, "listen", config.Address{}, "`address` to listen on when systemd passes no socket (default: the config's listen, 127.0.0.1:8080)")
	stateDir := flags.String("state-dir", firstDir(getenv("STATE_DIRECTORY")), "`directory` for state (default: $STATE_DIRECTORY, set by systemd's StateDirectory=)")
	metricsAddr := flags.String("metrics-listen", "", "`address` to serve /metrics on when systemd passes no socket named metrics (default: on the main listener)")
	fdStore := flags.Bool("fd-store", false, "hand the listener this process opens to systemd's FD store (the unit needs FileDescriptorStoreMax=); systemd ≥ 254 says so itself with $FDSTORE")
	var logFormat logging.Format
	flags.TextVar(&logFormat, "log-format", logging.FormatAuto, "where logs go: auto, journal, text or json (default: the config's log_format, auto)")
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
	given := map[string]bool{}
	flags.Visit(func(f *flag.Flag) { given[f.Name] = true })
	// systemd ≥ 257 sets DEBUG_INVOCATION=1 when it restarts a failed unit
	// with RestartMode=debug: that run logs at debug level, whatever the
	// file says, reloads included.
	debugInvocation := getenv("DEBUG_INVOCATION") == "1"

	// The configuration is checked before anything else happens, so that a
	// bad file stops the start with a message naming the line and key. A
	// missing file means the defaults, unless it was named with -config.
	file := config.File[C]{
		Path:        *configPath,
		Optional:    !given["config"],
		AppDefaults: s.AppDefaults,
		Override: func(c *config.Config) {
			if given["listen"] {
				c.Listen = listen
			}
			if given["log-format"] {
				c.LogFormat = logFormat
			}
			if debugInvocation {
				c.LogLevel = config.Level{Level: slog.LevelDebug}
			}
		},
	}
	cfg, appCfg, err := file.Load()
	if err != nil {
		return configError{err}
	}
	if *checkConfig {
		fmt.Fprintf(stdout, "%s: configuration ok\n", *configPath)
		return nil
	}
	if s.NeedsStateDir && *stateDir == "" {
		return usageError{errors.New("no state directory: pass -state-dir, or run under systemd with StateDirectory=")}
	}

	// Logs go to the journal when systemd connected stderr to it, else to
	// stderr. The level is a variable so that a reload can change it.
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel.Level)
	logger, err := logging.New(logging.Options{
		Format: cfg.LogFormat, Level: level,
		Identifier: name, Getenv: getenv, Stderr: stderr,
	})
	if err != nil {
		return err
	}
	if debugInvocation {
		logger.Info("debug invocation (DEBUG_INVOCATION=1): logging at debug level")
	}

	// The Go runtime's limits follow the unit's: GOMAXPROCS follows
	// CPUQuota= by itself (Go ≥ 1.25), the memory limit is set here from
	// MemoryHigh= and MemoryMax= (limits.go; docs/resources.md).
	memLimit, err := setMemoryLimit("/", getenv)
	if err != nil {
		logger.Warn("cannot read the cgroup's memory limit; the Go runtime gets none", "err", err)
	}
	logger.Info("runtime limits", "GOMAXPROCS", runtime.GOMAXPROCS(0), memLimit.attr())
	if err := checkOpenFiles(cfg.HTTP.MaxConnections); err != nil {
		logger.Warn("too few open files for max_connections", "err", err)
	}

	// A registry of our own, not client_golang's global one: everything
	// the daemon measures is passed to where it is measured.
	registry := prometheus.NewRegistry()
	m := metrics.New(registry, buildInfo())
	token := auth.NewToken(passed.Credentials)
	a, err := s.New(Deps[C]{Logger: logger, Registry: registry, Config: appCfg, StateDir: *stateDir, Credentials: passed.Credentials, Token: token})
	if err != nil {
		return err
	}
	return lifecycle.Run(ctx, lifecycle.Options{
		Signals:       signals,
		Logger:        logger,
		LogLevel:      level,
		Systemd:       passed,
		MetricsListen: *metricsAddr,
		StoreListener: *fdStore || getenv("FDSTORE") != "",
		Metrics:       m,
		Config:        cfg,
		LoadConfig:    loadConfig(file, a),
		Token:         token,
		App:           a,
	})
}

// loadConfig is how a reload reads file again for app a
// (lifecycle.Options.LoadConfig): the app's part waits in applyApp, for
// the lifecycle to call once it has found all of the reload valid.
func loadConfig[C any](file config.File[C], a App[C]) func() (config.Config, func(), error) {
	return func() (next config.Config, applyApp func(), err error) {
		next, appCfg, err := file.Load()
		return next, func() { a.Apply(appCfg) }, err
	}
}

// defaultConfigPath is config.toml in the directory systemd's
// ConfigurationDirectory= names, else in /etc/NAME.
func defaultConfigPath(name string, getenv func(string) string) string {
	if dir := firstDir(getenv("CONFIGURATION_DIRECTORY")); dir != "" {
		return filepath.Join(dir, "config.toml")
	}
	return filepath.Join("/etc", name, "config.toml")
}

// firstDir returns the first of the colon-separated directories systemd
// passes when a *Directory= setting names more than one.
func firstDir(dirs string) string {
	dir, _, _ := strings.Cut(dirs, ":")
	return dir
}

type configError struct{ error }

func (e configError) Unwrap() error { return e.error }

type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// ExitCode maps an error from Run to the process's exit status.
func ExitCode(err error) int {
	var ce configError
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ce), errors.Is(err, tlscreds.ErrUnusable):
		return ExitConfig
	case errors.As(err, &ue):
		return ExitUsage
	}
	return ExitFailure
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
