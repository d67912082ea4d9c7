package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/daemon/internal/logging"
)

// appSettings stands for an app's part of the file: keys at the top level
// and a table of its own, beside the daemon's.
type appSettings struct {
	Greeting string   `toml:"greeting"`
	Delay    Duration `toml:"start_delay"`
	Debug    bool     `toml:"debug_endpoints"`
	Notes    struct {
		Max int `toml:"max"`
	} `toml:"notes"`
}

func TestParseReadsEveryKeyIntoTheDaemonsAndTheAppsSettings(t *testing.T) {
	var app appSettings
	cfg, err := Parse("c.toml", []byte(`
greeting = "hi"
log_level = "DEBUG"
log_format = "json"
listen = ":9000"
drain_timeout = "1m30s"
start_delay = "2s"
debug_endpoints = true

[http]
read_header_timeout = "1s"
read_timeout = "2s"
write_timeout = "3s"
idle_timeout = "4s"
max_header_bytes = 4096
max_connections = 10

[notes]
max = 7
`), &app)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		LogLevel:     Level{slog.LevelDebug},
		LogFormat:    logging.FormatJSON,
		Listen:       Address{":9000"},
		DrainTimeout: Duration{90 * time.Second},
		HTTP: HTTP{
			ReadHeaderTimeout: Duration{time.Second},
			ReadTimeout:       Duration{2 * time.Second},
			WriteTimeout:      Duration{3 * time.Second},
			IdleTimeout:       Duration{4 * time.Second},
			MaxHeaderBytes:    4096,
			MaxConnections:    10,
		},
	}
	if cfg != want {
		t.Errorf("got %+v\nwant %+v", cfg, want)
	}
	wantApp := appSettings{Greeting: "hi", Delay: Duration{2 * time.Second}, Debug: true}
	wantApp.Notes.Max = 7
	if app != wantApp {
		t.Errorf("app settings %+v, want %+v", app, wantApp)
	}
}

func TestMissingKeysKeepTheirDefaults(t *testing.T) {
	app := appSettings{Greeting: "default"}
	cfg, err := Parse("c.toml", []byte(`drain_timeout = "1s"`), &app)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.DrainTimeout = Duration{time.Second}
	if cfg != want || app.Greeting != "default" {
		t.Errorf("got %+v and %+v, want %+v and the app's default greeting", cfg, app, want)
	}
}

func TestAKeyOnlyTheAppKnowsIsUnknownWithoutTheApp(t *testing.T) {
	_, err := Parse("c.toml", []byte("drain_timeout = \"1s\"\ngreeting = \"hi\""), nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.Key != "greeting" || ce.Line != 2 {
		t.Errorf("Parse without app settings: %v, want greeting at line 2 unknown", err)
	}
}

func TestErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		line      int
		key, why  string
	}{
		{"unknown key", "greeting = \"x\"\ngreting = \"y\"", 2, "greting", "unknown key"},
		{"bad log level", "\nlog_level = \"loud\"", 2, "log_level", `"loud" is not a log level`},
		{"bad log format", "log_format = \"xml\"", 1, "log_format", "auto, journal, text, json"},
		{"bad duration", "\n\ndrain_timeout = \"soon\"", 3, "drain_timeout", `"soon" is not a duration`},
		{"negative duration", "drain_timeout = \"-1s\"", 1, "drain_timeout", "negative"},
		{"bad value of the app's", "\nstart_delay = \"soon\"", 2, "start_delay", "not a duration"},
		{"unknown key in the app's table", "[notes]\nmax = 1\nmin = 2", 3, "notes.min", "unknown key"},
		{"unknown table", "[nodes]\nmax = 1", 1, "nodes", "unknown key"},
		{"bad address", "listen = \"8080\"", 1, "listen", "not host:port"},
		{"wrong type", "debug_endpoints = \"yes\"", 1, "debug_endpoints", "bool"},
		{"syntax", "greeting = \"unterminated\n", 1, "", "string"},
		{"key in a table", "[http]\nread_timeout = \"x\"", 2, "http.read_timeout", "not a duration"},
		{"unknown key in a table", "[http]\n\nmax_conns = 1", 3, "http.max_conns", "unknown key"},
		{"not positive", "[http]\nmax_connections = 0", 0, "http.max_connections", "must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("/etc/daemon/config.toml", []byte(tc.doc), &appSettings{})
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Parse: %v (%T), want *Error", err, err)
			}
			if ce.File != "/etc/daemon/config.toml" || ce.Line != tc.line || ce.Key != tc.key {
				t.Errorf("error at %s:%d key %q, want line %d key %q", ce.File, ce.Line, ce.Key, tc.line, tc.key)
			}
			if !strings.Contains(err.Error(), tc.why) {
				t.Errorf("error %q does not say %q", err, tc.why)
			}
			if !strings.HasPrefix(err.Error(), "/etc/daemon/config.toml:") {
				t.Errorf("error %q does not start with the file name", err)
			}
		})
	}
}

// TestAValueOfTheWrongKindNamesLineColumnAndKey: a number, a float, a
// boolean or a table where a setting wants a string, and a string or a
// float where it wants a number or a boolean, is refused with the line,
// column and key of the value, whichever setting it is: the daemon's text
// settings (Level, Format, Address, Duration), the app's, in a table or in
// an inline one. The decoder reported the first kind with the file alone
// (listen = 0 was "config.toml: "0" is not host:port").
func TestAValueOfTheWrongKindNamesLineColumnAndKey(t *testing.T) {
	for _, tc := range []struct {
		doc  string
		want string // the error, after the file name
	}{
		{"listen=0", `:1:8: key listen: "0" is not host:port`},
		{"listen = true", `:1:10: key listen: "true" is not host:port`},
		{"listen = 1.5", `:1:10: key listen: "1.5" is not host:port`},
		{"listen = {host = \"x\"}", ":1:10: key listen: a table where a string goes"},
		{"log_level = 1", `:1:13: key log_level: "1" is not a log level`},
		{"log_level = false", `:1:13: key log_level: "false" is not a log level`},
		{"log_format = 2.5", `:1:14: key log_format: log format "2.5"`},
		{"log_format = 2", `:1:14: key log_format: log format "2"`}, // an integer type
		{"\ndrain_timeout = 10", `:2:17: key drain_timeout: "10" is not a duration`},
		{"[http]\nread_timeout = true", `:2:16: key http.read_timeout: "true" is not a duration`},
		{"http = {idle_timeout = 7}", `:1:24: key http.idle_timeout: "7" is not a duration`},
		{"[instruments]\nstart_delay = 1e3", `:2:15: key instruments.start_delay: "1e3" is not a duration`},
		{"start_delay = 5", `:1:15: key start_delay: "5" is not a duration`}, // the app's
		{"[http]\nmax_connections = \"many\"", ":2:19: key http.max_connections: cannot decode TOML string"},
		{"[http]\nmax_header_bytes = 1.5", ":2:20: key http.max_header_bytes: cannot decode TOML float"},
		{"[instruments]\nenabled = \"yes\"", ":2:11: key instruments.enabled: cannot decode TOML string"},
		{"[instruments]\nenabled = 1", ":2:11: key instruments.enabled: cannot decode TOML integer"},
		{"debug_endpoints = 0", ":1:19: key debug_endpoints: cannot decode TOML integer"}, // the app's
	} {
		_, err := Parse("config.toml", []byte(tc.doc), &appSettings{})
		if err == nil || !strings.HasPrefix(err.Error(), "config.toml"+tc.want) {
			t.Errorf("%q: %v\n  want config.toml%s…", tc.doc, err, tc.want)
		}
	}
	// A number a text setting takes is taken, as before.
	cfg, err := Parse("config.toml", []byte("drain_timeout = 0"), nil)
	if err != nil || cfg.DrainTimeout.Duration != 0 {
		t.Errorf("drain_timeout = 0: %v, %v", cfg.DrainTimeout, err)
	}
}

func TestLoadOfAMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none.toml")
	if _, _, err := (File[appSettings]{Path: path}).Load(); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
	// The default path may be missing: the defaults apply.
	cfg, app, err := File[appSettings]{Path: path, Optional: true,
		AppDefaults: func() appSettings { return appSettings{Greeting: "default"} }}.Load()
	if err != nil || cfg != Default() || app.Greeting != "default" {
		t.Errorf("Load of a missing optional file: %+v %+v %v, want the defaults", cfg, app, err)
	}
}

func TestOverrideWinsOverTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, []byte(`listen = "127.0.0.1:1"`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := File[appSettings]{Path: path, Override: func(c *Config) { c.Listen = Address{"127.0.0.1:2"} }}.Load()
	if err != nil || cfg.Listen.String() != "127.0.0.1:2" {
		t.Errorf("Load with an override: listen %v, %v; want 127.0.0.1:2", cfg.Listen, err)
	}
}

// TestTheFirstUnknownKeyInTheFileIsNamed: when the app's table has an
// unknown key before one in the daemon's, the error names the first.
func TestTheFirstUnknownKeyInTheFileIsNamed(t *testing.T) {
	_, err := Parse("c.toml", []byte("[notes]\nmin = 1\n[http]\nmax_conns = 1\n"), &appSettings{})
	var ce *Error
	if !errors.As(err, &ce) || ce.Line != 2 || ce.Key != "notes.min" {
		t.Errorf("Parse: %v, want notes.min at line 2", err)
	}
	_, err = Parse("c.toml", []byte("[http]\nmax_conns = 1\n[notes]\nmin = 1\n"), &appSettings{})
	if !errors.As(err, &ce) || ce.Line != 2 || ce.Key != "http.max_conns" {
		t.Errorf("Parse: %v, want http.max_conns at line 2", err)
	}
}
