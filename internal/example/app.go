// Package example is the example service: a greeting that comes from the
// configuration (to show reloads), notes kept durably in the state
// directory (to show state that survives restarts), and a work loop whose
// health decides whether the systemd watchdog is fed.
//
// It is the part of this repository that `make drop-example` deletes, and
// internal/app replaces. It implements service.App, and has nothing else
// to do with systemd: the sockets, readiness, health and metrics endpoints,
// the API token its writes need, reloads and the drain are the kit's.
package example

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"example.com/daemon/internal/auth"
	"example.com/daemon/internal/config"
	"example.com/daemon/internal/lifecycle"
	"example.com/daemon/internal/service"
)

// Config is the app's part of the configuration file: top-level keys beside
// the daemon's own (config.Config). Settings, below, says what each means.
type Config struct {
	Greeting   string          `toml:"greeting"`
	StartDelay config.Duration `toml:"start_delay"`
	// The bounds on the notes, kept by the store (store.go).
	MaxNotes      int   `toml:"max_notes"`
	MaxNoteBytes  int64 `toml:"max_note_bytes"`
	MaxStateBytes int64 `toml:"max_state_bytes"`
}

// Settings describes each of the example's settings (config.Documented):
// the README, the manual page and deploy/config.toml are made from it.
func (Config) Settings() []config.Setting {
	return []config.Setting{
		{Key: "greeting", Reloadable: true,
			Doc: "What `GET /` answers."},
		{Key: "start_delay",
			Doc: "A simulated warm-up before the daemon reports ready (a cache to fill, a peer to connect to): systemd holds `systemctl start`, and queues connections, until it ends."},
		{Key: "max_notes", Reloadable: true,
			Doc: "How many notes the store holds; past it a new note is answered 507, and what is stored stays."},
		{Key: "max_note_bytes", Reloadable: true,
			Doc: "How large one note may be; a larger body is answered 413."},
		{Key: "max_state_bytes", Reloadable: true,
			Doc: "How many bytes all notes take, names and bodies; past it a write is answered 507, as it is when the disk is full."},
	}
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

// NeedsStateDir: the notes are kept in the state directory, so the daemon
// refuses to start without one.
const NeedsStateDir = true

// App is the example service.
type App struct {
	logger   *slog.Logger
	stateDir string
	cfg      atomic.Pointer[Config]
	store    *store
	token    *auth.Token     // what PUT needs; the kit reads it
	loop     context.Context // the work loop's life; Close ends it
	stop     context.CancelFunc
	done     chan struct{}
}

var _ service.App[Config] = (*App)(nil)

// New returns the app with its first configuration, the directory it
// keeps state in and the API token its writes need; Start opens the state
// and begins the work.
func New(d service.Deps[Config]) (service.App[Config], error) {
	return newApp(d.Logger, d.Config, d.StateDir, d.Token)
}

func newApp(logger *slog.Logger, cfg Config, stateDir string, token *auth.Token) (*App, error) {
	if stateDir == "" {
		return nil, errors.New("no state directory: pass -state-dir, or run under systemd with StateDirectory=")
	}
	a := &App{logger: logger, stateDir: stateDir, token: token, done: make(chan struct{})}
	a.cfg.Store(&cfg)
	return a, nil
}

// Start loads the saved notes, starts the work loop and does the warm-up a
// real service would do before it can serve (here simulated by
// start_delay). It returns when the app can serve, or when ctx is done.
func (a *App) Start(ctx context.Context, progress lifecycle.Progress) error {
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

// Apply swaps in a new configuration. Requests already running keep what
// they started with; the next ones see the new.
func (a *App) Apply(cfg Config) { a.cfg.Store(&cfg) }

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
