package config

import (
	"errors"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseReadsEveryKey(t *testing.T) {
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
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		Greeting:       "hi",
		LogLevel:       Level{slog.LevelDebug},
		LogFormat:      Format{"json"},
		Listen:         Address{":9000"},
		DrainTimeout:   Duration{90 * time.Second},
		StartDelay:     Duration{2 * time.Second},
		DebugEndpoints: true,
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
}

func TestMissingKeysKeepTheirDefaults(t *testing.T) {
	cfg, err := Parse("c.toml", []byte(`greeting = "hi"`))
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	want.Greeting = "hi"
	if cfg != want {
		t.Errorf("got %+v, want %+v", cfg, want)
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
		{"negative duration", "start_delay = \"-1s\"", 1, "start_delay", "negative"},
		{"bad address", "listen = \"8080\"", 1, "listen", "not host:port"},
		{"wrong type", "debug_endpoints = \"yes\"", 1, "debug_endpoints", "bool"},
		{"syntax", "greeting = \"unterminated\n", 1, "", "string"},
		{"key in a table", "[http]\nread_timeout = \"x\"", 2, "http.read_timeout", "not a duration"},
		{"unknown key in a table", "[http]\n\nmax_conns = 1", 3, "http.max_conns", "unknown key"},
		{"not positive", "[http]\nmax_connections = 0", 0, "http.max_connections", "must be positive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("/etc/daemon/config.toml", []byte(tc.doc))
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

func TestLoadMissingFileIsNotExist(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.toml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want fs.ErrNotExist", err)
	}
}

func TestShippedConfigIsValid(t *testing.T) {
	path := filepath.Join("..", "..", "deploy", "config.toml")
	cfg, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DebugEndpoints {
		t.Error("the shipped config enables the debug endpoints")
	}
}
