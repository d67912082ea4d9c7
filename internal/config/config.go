// Package config loads the daemon's TOML configuration file.
//
// Every value is checked while it is decoded, so an error can name the file,
// the line and the key that is wrong: a daemon that refuses to start, or
// refuses a reload, must say exactly what to fix.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"example.com/daemon/internal/logging"
)

// Config is the daemon's configuration. The zero value is not valid; start
// from Default.
type Config struct {
	// Greeting is the text GET / answers with.
	Greeting string `toml:"greeting"`
	// LogLevel is the lowest level logged: debug, info, warn or error.
	LogLevel Level `toml:"log_level"`
	// LogFormat chooses where logs go: auto (the journal when stderr is
	// connected to it, else text on stderr), journal, text or json.
	LogFormat Format `toml:"log_format"`
	// Listen is the address to listen on when systemd passes no socket.
	// It cannot change on reload: the socket is opened once.
	Listen Address `toml:"listen"`
	// DrainTimeout bounds how long in-flight requests may take to finish
	// after a stop was requested.
	DrainTimeout Duration `toml:"drain_timeout"`
	// StartDelay is simulated warm-up work before the daemon is ready (a
	// cache to fill, a peer to connect to). It shows that systemd holds
	// `systemctl start`, and queues connections, until READY=1.
	StartDelay Duration `toml:"start_delay"`
	// HTTP bounds what one client can hold: a slow or hostile client must
	// not be able to starve the others. Takes effect at the next start.
	HTTP HTTP `toml:"http"`
	// DebugEndpoints enables POST /debug/wedge and GET /debug/sleep, which
	// let tests hang the app and hold requests open. Off in production.
	DebugEndpoints bool `toml:"debug_endpoints"`
}

// HTTP holds the limits of the HTTP server, in the [http] table.
type HTTP struct {
	// ReadHeaderTimeout bounds the time to send the request headers: the
	// defence against slowloris, clients that hold a connection open by
	// sending a header byte at a time.
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	// ReadTimeout bounds the time to read a whole request, body included.
	ReadTimeout Duration `toml:"read_timeout"`
	// WriteTimeout bounds the time from the end of the request headers to
	// the end of the response.
	WriteTimeout Duration `toml:"write_timeout"`
	// IdleTimeout closes keep-alive connections that wait longer than this
	// for their next request.
	IdleTimeout Duration `toml:"idle_timeout"`
	// MaxHeaderBytes bounds the request line and headers; bigger requests
	// get 431.
	MaxHeaderBytes int `toml:"max_header_bytes"`
	// MaxConnections bounds the connections served at once; more wait in
	// the listening socket's backlog until one closes.
	MaxConnections int `toml:"max_connections"`
}

// Default returns the configuration used when no file exists.
func Default() Config {
	return Config{
		Greeting:     "Hello from daemon!",
		LogLevel:     Level{slog.LevelInfo},
		LogFormat:    Format{"auto"},
		Listen:       Address{"127.0.0.1:8080"},
		DrainTimeout: Duration{10 * time.Second},
		HTTP: HTTP{
			ReadHeaderTimeout: Duration{5 * time.Second},
			ReadTimeout:       Duration{30 * time.Second},
			WriteTimeout:      Duration{60 * time.Second},
			IdleTimeout:       Duration{2 * time.Minute},
			MaxHeaderBytes:    64 << 10,
			MaxConnections:    1024,
		},
	}
}

// Load reads the file at path over the defaults. An error that concerns the
// file's content is an *Error; a file that does not exist gives an error
// that matches fs.ErrNotExist.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	return Parse(path, data)
}

// Parse decodes data, read from the file named name, over the defaults.
// Unknown keys are errors: a misspelt key silently ignored is a setting
// that silently does not apply.
func Parse(name string, data []byte) (Config, error) {
	cfg := Default()
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, newError(name, err)
	}
	// The only checks that need more than one value at a time. The
	// decoder no longer knows the lines, so these errors name the key.
	for _, c := range []struct {
		key string
		n   int
	}{{"http.max_header_bytes", cfg.HTTP.MaxHeaderBytes}, {"http.max_connections", cfg.HTTP.MaxConnections}} {
		if c.n <= 0 {
			return Config{}, &Error{File: name, Key: c.key, Err: fmt.Errorf("%d: must be positive", c.n)}
		}
	}
	return cfg, nil
}

// Error is a problem with the content of a configuration file.
type Error struct {
	File         string
	Line, Column int
	Key          string
	Err          error
}

func (e *Error) Error() string {
	where := e.File
	if e.Line > 0 {
		where = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column)
	}
	if e.Key == "" {
		return fmt.Sprintf("%s: %v", where, e.Err)
	}
	return fmt.Sprintf("%s: key %s: %v", where, e.Key, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func newError(file string, err error) error {
	var de *toml.DecodeError
	var se *toml.StrictMissingError
	switch {
	case errors.As(err, &se) && len(se.Errors) > 0:
		de = &se.Errors[0]
		err = errors.New("unknown key (misspelt, or not supported by this version)")
	case errors.As(err, &de):
		// The decoder's message starts with "toml: ", and for a value
		// rejected by UnmarshalText it carries our own message after it.
		err = errors.New(strings.TrimPrefix(de.Error(), "toml: "))
	default:
		return &Error{File: file, Err: err}
	}
	line, col := de.Position()
	return &Error{File: file, Line: line, Column: col, Key: strings.Join(de.Key(), "."), Err: err}
}

// Level is a log level restricted to the four names the daemon documents.
type Level struct{ slog.Level }

// UnmarshalText accepts debug, info, warn and error.
func (l *Level) UnmarshalText(b []byte) error {
	switch s := strings.ToLower(string(b)); s {
	case "debug", "info", "warn", "error":
		return l.Level.UnmarshalText([]byte(s))
	}
	return fmt.Errorf("%q is not a log level: use debug, info, warn or error", b)
}

// The text types below are structs, not named strings, because the TOML
// decoder assigns a string to a string-kinded type directly, without calling
// its UnmarshalText, and so without the check.

// Format is where logs go: auto, journal, text or json.
type Format struct{ s string }

func (f Format) String() string { return f.s }

// UnmarshalText accepts the formats package logging knows.
func (f *Format) UnmarshalText(b []byte) error {
	if _, err := logging.ParseFormat(string(b)); err != nil {
		return err
	}
	f.s = string(b)
	return nil
}

// Address is a host:port to listen on.
type Address struct{ s string }

func (a Address) String() string { return a.s }

// UnmarshalText accepts host:port, with an empty host meaning every address.
func (a *Address) UnmarshalText(b []byte) error {
	if _, _, err := net.SplitHostPort(string(b)); err != nil {
		return fmt.Errorf("%q is not host:port: %w", b, err)
	}
	a.s = string(b)
	return nil
}

// Duration is a non-negative time.Duration written like "10s" or "1m30s".
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"10s\" or \"1m30s\"", b)
	}
	if v < 0 {
		return fmt.Errorf("%q is negative", b)
	}
	d.Duration = v
	return nil
}

// MarshalText writes the duration back in the form UnmarshalText reads.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
