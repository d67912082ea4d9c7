// Package app is the example service: a greeting that comes from the
// configuration (to show reloads), notes kept durably in the state
// directory (to show state that survives restarts), and a work loop whose
// health decides whether the systemd watchdog is fed.
//
// It is the part of this repository a new service replaces. It implements
// lifecycle.App, and has nothing else to do with systemd but the token its
// writes need, which it reads as a credential: the sockets, readiness,
// health and metrics endpoints, reloads and the drain are the lifecycle's.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"example.com/daemon/internal/config"
	"example.com/daemon/internal/lifecycle"
	"example.com/daemon/internal/systemd"
)

// Config is the app's part of the configuration file: top-level keys beside
// the daemon's own (config.Config).
type Config struct {
	// Greeting is the text GET / answers with. Reloadable.
	Greeting string `toml:"greeting"`
	// StartDelay is simulated warm-up work before the daemon is ready (a
	// cache to fill, a peer to connect to). It shows that systemd holds
	// `systemctl start`, and queues connections, until READY=1. Read at
	// start.
	StartDelay config.Duration `toml:"start_delay"`
	// DebugEndpoints enables POST /debug/wedge, GET /debug/sleep, GET
	// /debug/panic, GET /debug/alloc and GET /debug/log, which let tests
	// hang the app, hold requests open, panic in a handler, load the memory
	// and log a numbered line. Off in production. Reloadable.
	DebugEndpoints bool `toml:"debug_endpoints"`
	// MaxNotes, MaxNoteBytes and MaxStateBytes bound the notes: how many,
	// how large one may be, and how much all of them take (names and
	// bodies). Past them a PUT is refused, 413 for a note too large, 507
	// for a full store, and what is stored stays. Reloadable.
	MaxNotes      int   `toml:"max_notes"`
	MaxNoteBytes  int64 `toml:"max_note_bytes"`
	MaxStateBytes int64 `toml:"max_state_bytes"`
}

// Validate refuses limits that are not positive (config.Validator): none
// would let a note in, and a negative one would read as no limit at all.
func (c *Config) Validate() error {
	for _, l := range []struct {
		key string
		n   int64
	}{{"max_notes", int64(c.MaxNotes)}, {"max_note_bytes", c.MaxNoteBytes}, {"max_state_bytes", c.MaxStateBytes}} {
		if l.n <= 0 {
			return &config.Error{Key: l.key, Err: fmt.Errorf("%d: must be positive", l.n)}
		}
	}
	return nil
}

// DefaultConfig returns the app's settings when the file does not set them.
// The limits fit the unit's MemoryMax=: the database is mapped into memory,
// and its pages count against the cgroup as they are read.
func DefaultConfig() Config {
	return Config{
		Greeting:      "Hello from daemon!",
		MaxNotes:      10000,
		MaxNoteBytes:  64 << 10,
		MaxStateBytes: 64 << 20,
	}
}

// App is the example service.
type App struct {
	logger   *slog.Logger
	stateDir string
	cfg      atomic.Pointer[Config]
	store    *store
	token    token
	loop     context.Context // the work loop's life; Close ends it
	stop     context.CancelFunc
	done     chan struct{}
}

var _ lifecycle.App[Config] = (*App)(nil)

// New returns the app with its first configuration, the directory it
// keeps state in and the unit's credentials; Start reads the token, opens
// the state and begins the work.
func New(logger *slog.Logger, cfg Config, stateDir string, creds systemd.Credentials) (*App, error) {
	if stateDir == "" {
		return nil, errors.New("no state directory: pass -state-dir, or run under systemd with StateDirectory=")
	}
	a := &App{logger: logger, stateDir: stateDir, done: make(chan struct{})}
	a.cfg.Store(&cfg)
	a.token.creds = creds
	return a, nil
}

// Start loads the saved notes, starts the work loop and does the warm-up a
// real service would do before it can serve (here simulated by
// start_delay). It returns when the app can serve, or when ctx is done.
func (a *App) Start(ctx context.Context, progress lifecycle.Progress) error {
	// Without the token the daemon still starts and serves reads, and
	// refuses writes saying how to give it one; a token it cannot read
	// (the wrong owner, say) stops the start, with the reason in STATUS=.
	if _, err := a.token.load(); errors.Is(err, systemd.ErrNoCredential) {
		a.logger.Warn("writes are refused until the daemon has a token", "err", err)
	} else if err != nil {
		return err
	}
	s, err := openStore(a.stateDir)
	if err != nil {
		return err
	}
	a.store = s
	a.loop, a.stop = context.WithCancel(context.Background())
	go func() {
		defer close(a.done)
		a.store.run(a.loop)
	}()
	d := a.config().StartDelay.Duration
	if d <= 0 {
		return nil
	}
	// A warm-up says how it goes, and how much longer it needs, each
	// second: systemd then waits for it past TimeoutStartSec=, and still
	// ends a start that stops making progress.
	a.logger.Info("warming up", "start_delay", d)
	end := time.Now().Add(d)
	for left := d; left > 0; left = time.Until(end) {
		progress(fmt.Sprintf("Warming up: %s left", left.Round(time.Second)), left+5*time.Second)
		select {
		case <-time.After(min(left, time.Second)):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Apply swaps in a new configuration, and reads the token again: a
// credential rotated where the reload can see it takes effect at once
// (docs/hardening.md, "The API token", says where that is). Requests
// already running keep what they started with; the next ones see the new.
func (a *App) Apply(cfg Config) {
	a.cfg.Store(&cfg)
	hadToken := a.token.digest.Load() != nil
	switch changed, err := a.token.load(); {
	case err != nil && hadToken:
		a.logger.Warn("could not read the token again; the one read before stays", "err", err)
	case errors.Is(err, systemd.ErrNoCredential):
		a.logger.Debug("still no token; writes stay refused", "err", err)
	case err != nil:
		a.logger.Warn("could not read the token; writes stay refused", "err", err)
	case changed:
		a.logger.Info("the token changed; writes need the new one")
	}
}

func (a *App) config() *Config { return a.cfg.Load() }

// Check is the health check: it succeeds when the work loop answers within
// ctx. GET /healthz and the systemd watchdog both use it.
func (a *App) Check(ctx context.Context) error {
	return a.store.do(ctx, func() {})
}

// Close stops the work loop and closes the database. Every write it
// acknowledged is already on disk.
func (a *App) Close() error {
	if a.stop == nil {
		return nil
	}
	a.stop()
	<-a.done
	return a.store.close()
}

// wedge hangs the work loop until the app closes: the health check then
// fails, as it would for a real deadlock or a stuck disk.
func (a *App) wedge(ctx context.Context) error {
	select {
	case a.store.reqs <- func() { <-a.loop.Done() }:
		a.logger.Warn("work loop wedged on request; health checks fail from now on")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("work loop not answering: %w", ctx.Err())
	}
}
