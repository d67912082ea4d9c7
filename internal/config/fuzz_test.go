package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// FuzzParse feeds the loader arbitrary files: it must never panic, and
// every rejection must say where (a line, or at least the key) and why.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"",
		`greeting = "hi"`,
		"log_level = \"debug\"\nlog_format = \"json\"\n",
		"listen = \"[::1]:80\"\ndrain_timeout = \"1m\"\n",
		"[http]\nmax_connections = 5\nread_timeout = \"1s\"\n",
		"greeting = \"\"\"\nmulti\nline\"\"\"",
		"[http]\nmax_header_bytes = -1",
		"greeting = 1",
		"= 1",
		"[[http]]",
		"[notes]\nmax = 1\n[notes.x]\ny = 2",
		"a.b.c = 1",
		"log_level = 1",
		"[http]\nread_timeout = true",
		"listen = {a = 1}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, err := Parse("fuzz.toml", data, &appSettings{})
		if err == nil {
			return
		}
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("error %v (%T) is not a *config.Error", err, err)
		}
		if ce.File != "fuzz.toml" || (ce.Line == 0 && ce.Key == "") || ce.Err == nil || ce.Err.Error() == "" {
			t.Fatalf("error %q does not say where and why: %+v", err, ce)
		}
		// And the message a user reads says it: the line, or the key.
		if msg := err.Error(); !strings.HasPrefix(msg, fmt.Sprintf("fuzz.toml:%d:", ce.Line)) && !strings.Contains(msg, "key "+ce.Key+":") {
			t.Fatalf("error %q names neither a line nor a key", msg)
		}
	})
}
