// Package config loads the configuration file: the daemon's own settings,
// which every service built on this kit has (logging, the listen address,
// the stop's drain timeout, the HTTP server's limits), and the app's
// settings beside them in the same file, decoded into a struct the app
// defines.
//
// Every value is checked while it is decoded, so an error can name the file,
// the line and the key that is wrong: a daemon that refuses to start, or
// refuses a reload, must say exactly what to fix.
package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"example.com/daemon/internal/logging"
)

// Config is the daemon's own part of the configuration. The zero value is
// not valid; start from Default. What each key means, to the people who set
// it, is said once, in Settings (settings.go).
type Config struct {
	LogLevel     Level          `toml:"log_level"`
	LogFormat    logging.Format `toml:"log_format"`
	Listen       Address        `toml:"listen"` // read at start: the socket is opened once
	DrainTimeout Duration       `toml:"drain_timeout"`
	// HTTP takes effect at the next start: the server is made once.
	HTTP        HTTP        `toml:"http"`
	Instruments Instruments `toml:"instruments"`
}

// Instruments are the kit's own test instruments, in the [instruments]
// table: what the scenarios under systemd use to make the kit show what it
// does, whatever the app is. internal/lifecycle/instruments.go serves them.
type Instruments struct {
	Enabled    bool     `toml:"enabled"`
	StartDelay Duration `toml:"start_delay"`
}

// HTTP holds the limits of the HTTP server, in the [http] table.
type HTTP struct {
	ReadHeaderTimeout Duration `toml:"read_header_timeout"`
	ReadTimeout       Duration `toml:"read_timeout"`
	WriteTimeout      Duration `toml:"write_timeout"`
	IdleTimeout       Duration `toml:"idle_timeout"`
	MaxHeaderBytes    int      `toml:"max_header_bytes"`
	// MaxConnections is kept by internal/lifecycle/limit.go.
	MaxConnections int `toml:"max_connections"`
}

// Default returns the daemon's settings when the file does not set them.
func Default() Config {
	return Config{
		LogLevel:     Level{slog.LevelInfo},
		LogFormat:    logging.FormatAuto,
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

// File is the configuration file, read at start and again on every reload.
// A is the app's part of it: a struct with toml tags whose keys sit beside
// the daemon's own.
type File[A any] struct {
	// Path is the file's name.
	Path string
	// Optional makes a missing file mean the defaults; it is set when Path
	// is the default path, not one named with -config.
	Optional bool
	// AppDefaults returns the app's settings as they are before the file
	// is read; nil means A's zero value.
	AppDefaults func() A
	// Override is applied to every Config read, for the command line's
	// settings that win over the file's (-listen, -log-format); may be nil.
	Override func(*Config)
}

// Load reads the file: the daemon's settings and the app's, or an error
// that names the file, line and key.
func (f File[A]) Load() (Config, A, error) {
	var app A
	if f.AppDefaults != nil {
		app = f.AppDefaults()
	}
	cfg := Default()
	data, err := os.ReadFile(f.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist) && f.Optional:
	case err != nil:
		return Config{}, app, err
	default:
		if cfg, err = Parse(f.Path, data, &app); err != nil {
			return Config{}, app, err
		}
	}
	if f.Override != nil {
		f.Override(&cfg)
	}
	return cfg, app, nil
}

// Parse decodes data, read from the file named name, over the defaults:
// the daemon's settings into the Config it returns, and the app's into app,
// a pointer to the app's settings holding their defaults (nil for an app
// with none). Unknown keys are errors: a misspelt key silently ignored is a
// setting that silently does not apply.
func Parse(name string, data []byte, app any) (Config, error) {
	cfg := Default()
	// The file is decoded twice, once into each struct; a key is unknown
	// when neither of them has it.
	unknownToDaemon, err := decode(data, &cfg)
	if err != nil {
		return Config{}, newError(name, data, err, &cfg)
	}
	unknown := unknownToDaemon
	if app != nil {
		unknownToApp, err := decode(data, app)
		if err != nil {
			return Config{}, newError(name, data, err, app)
		}
		unknown = unknownToBoth(unknownToDaemon, unknownToApp)
	}
	// The decoder drops an inline table given to a text setting without a
	// word; this finds it.
	if err := textValues(name, data, &cfg, app); err != nil {
		return Config{}, err
	}
	if len(unknown) > 0 {
		de := unknown[0]
		line, col := de.Position()
		return Config{}, &Error{File: name, Line: line, Column: col, Key: strings.Join(de.Key(), "."),
			Err: errors.New("unknown key (misspelt, or not supported by this version)")}
	}
	if v, ok := app.(Validator); ok {
		if err := v.Validate(); err != nil {
			var e *Error
			if errors.As(err, &e) {
				e.File = name
				return Config{}, e
			}
			return Config{}, &Error{File: name, Err: err}
		}
	}
	// The only checks that the decoder cannot make itself. It no longer
	// knows the lines, so these errors name the key.
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

// Validator is an app's settings that check themselves once decoded, for
// what the decoder cannot check (a number that must be positive). Return
// an *Error with Key set, and Parse adds the file's name.
type Validator interface {
	Validate() error
}

// decode decodes data into v, strictly, and returns the keys v has no field
// for, in the order the file has them.
func decode(data []byte, v any) ([]toml.DecodeError, error) {
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	var se *toml.StrictMissingError
	if errors.As(err, &se) {
		return se.Errors, nil
	}
	return nil, err
}

// unknownToBoth returns the keys of a that b does not know either. A key
// is unknown to a struct when it, or the table holding it, is reported: a
// table the struct lacks is reported once, not key by key.
func unknownToBoth(a, b []toml.DecodeError) []toml.DecodeError {
	covers := func(errs []toml.DecodeError, key []string) bool {
		return slices.ContainsFunc(errs, func(e toml.DecodeError) bool {
			k := e.Key()
			return len(k) <= len(key) && slices.Equal(k, key[:len(k)])
		})
	}
	var both []toml.DecodeError
	for _, e := range a {
		if covers(b, e.Key()) {
			both = append(both, e)
		}
	}
	for _, e := range b {
		if covers(a, e.Key()) && !covers(both, e.Key()) {
			both = append(both, e)
		}
	}
	slices.SortFunc(both, func(x, y toml.DecodeError) int {
		xl, xc := x.Position()
		yl, yc := y.Position()
		if xl != yl {
			return xl - yl
		}
		return xc - yc
	})
	return both
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

// newError makes err, from decoding data into v, an *Error that says
// where, when it can.
func newError(file string, data []byte, err error, v any) error {
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		// Only a text setting's UnmarshalText, given a number or a boolean,
		// fails without a DecodeError (textValues); find which.
		if located := textValues(file, data, v); located != nil {
			return located
		}
		return &Error{File: file, Err: err}
	}
	// The decoder's message starts with "toml: ", and for a value rejected
	// by UnmarshalText it carries our own message after it.
	line, col := de.Position()
	return &Error{File: file, Line: line, Column: col, Key: strings.Join(de.Key(), "."),
		Err: errors.New(strings.TrimPrefix(de.Error(), "toml: "))}
}

// textValues finds, in data, the first value a text setting (Level,
// logging.Format, Address, Duration, or an app's encoding.TextUnmarshaler)
// cannot take, in the settings of any of targets (pointers to structs, or
// nil), and returns an *Error naming its line, column and key; nil if there
// is none.
//
// The decoder says where a text setting's value is wrong when the value is
// a string. Given an integer, a float or a boolean (listen = 0), it hands
// UnmarshalText the value's text and returns UnmarshalText's error bare:
// no line, no key, only "fuzz.toml: "0" is not host:port"; and an integer
// given to an integer type (log_format = 2, logging.Format) it takes as the
// number, without asking UnmarshalText at all. Given an inline
// table (listen = {a = 1}), it sets nothing and says nothing. So the file
// is read here a second time, with the decoder's own parser (its package
// unstable: go.mod pins the version), and each such value is put to the
// setting's UnmarshalText again, where it is known.
func textValues(file string, data []byte, targets ...any) error {
	var types []reflect.Type
	for _, t := range targets {
		if t != nil {
			types = append(types, reflect.TypeOf(t))
		}
	}
	var p unstable.Parser
	p.Reset(data)
	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyOf(e)
		case unstable.KeyValue:
			if err := textValue(file, &p, data, types, append(slices.Clone(table), keyOf(e)...), e.Value()); err != nil {
				return err
			}
		}
	}
	return nil // a file the parser refuses is the decoder's to report
}

// textValue checks the value v given to key, and the values inside it when
// it is an inline table.
func textValue(file string, p *unstable.Parser, data []byte, types []reflect.Type, key []string, v *unstable.Node) error {
	if v.Kind == unstable.InlineTable {
		for it := v.Children(); it.Next(); {
			kv := it.Node()
			if err := textValue(file, p, data, types, append(slices.Clone(key), keyOf(kv)...), kv.Value()); err != nil {
				return err
			}
		}
	}
	for _, t := range types {
		ft := fieldType(t, key)
		if ft == nil || ft.Kind() == reflect.String || !reflect.PointerTo(ft).Implements(textUnmarshalerType) {
			continue
		}
		var err error
		switch v.Kind {
		case unstable.Integer, unstable.Float, unstable.Bool:
			err = reflect.New(ft).Interface().(encoding.TextUnmarshaler).UnmarshalText(v.Data)
		case unstable.InlineTable:
			err = errors.New("a table where a string goes")
		}
		if err != nil {
			line, col := position(data, int(v.Raw.Offset))
			return &Error{File: file, Line: line, Column: col, Key: strings.Join(key, "."), Err: err}
		}
	}
	return nil
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

// keyOf is the key of a key-value or table expression, one part per dot.
func keyOf(e *unstable.Node) []string {
	var key []string
	for it := e.Key(); it.Next(); {
		key = append(key, string(it.Node().Data))
	}
	return key
}

// fieldType is the type of the field key names in t, as the decoder finds
// it (the toml tag, else the field's name, in any case), or nil.
func fieldType(t reflect.Type, key []string) reflect.Type {
	for _, part := range key {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return nil
		}
		f, ok := fieldNamed(t, part)
		if !ok {
			return nil
		}
		t = f.Type
	}
	return t
}

func fieldNamed(t reflect.Type, name string) (reflect.StructField, bool) {
	var folded reflect.StructField
	found := false
	for _, f := range reflect.VisibleFields(t) {
		if !f.IsExported() || f.Anonymous {
			continue
		}
		n, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		switch n {
		case "-":
			continue
		case "":
			n = f.Name
		}
		if n == name {
			return f, true
		}
		if !found && strings.EqualFold(n, name) {
			folded, found = f, true
		}
	}
	return folded, found
}

// position is the line and column, from 1, of the byte at offset in data,
// counted as the decoder counts them.
func position(data []byte, offset int) (line, col int) {
	before := data[:min(offset, len(data))]
	line = bytes.Count(before, []byte("\n")) + 1
	return line, offset - (bytes.LastIndexByte(before, '\n') + 1) + 1
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

// MarshalText writes the level's name as the file writes it, in lower case.
func (l Level) MarshalText() ([]byte, error) {
	return []byte(strings.ToLower(l.String())), nil
}

// The text types below are structs, not named strings, because the TOML
// decoder assigns a string to a string-kinded type directly, without calling
// its UnmarshalText, and so without the check. (An integer type, such as
// logging.Format, is safe: the decoder gives it a string through
// UnmarshalText, and textValues refuses it a number.)

// Address is a host:port to listen on.
type Address struct{ s string }

func (a Address) String() string { return a.s }

// UnmarshalText accepts host:port, with an empty host meaning every address.
// The -listen flag is parsed with it too.
func (a *Address) UnmarshalText(b []byte) error {
	if _, _, err := net.SplitHostPort(string(b)); err != nil {
		return fmt.Errorf("%q is not host:port: %w", b, err)
	}
	a.s = string(b)
	return nil
}

// MarshalText writes the address back as UnmarshalText reads it.
func (a Address) MarshalText() ([]byte, error) { return []byte(a.s), nil }

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

// MarshalText writes the duration back in the form UnmarshalText reads,
// without the zero units time.Duration's String adds: 2m, not 2m0s.
func (d Duration) MarshalText() ([]byte, error) {
	s := d.String()
	if t, ok := strings.CutSuffix(s, "0s"); ok && (strings.HasSuffix(t, "m") || strings.HasSuffix(t, "h")) {
		s = t
	}
	if t, ok := strings.CutSuffix(s, "0m"); ok && strings.HasSuffix(t, "h") {
		s = t
	}
	return []byte(s), nil
}
