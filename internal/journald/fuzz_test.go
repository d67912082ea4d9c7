package journald

import (
	"log/slog"
	"regexp"
	"slices"
	"testing"
)

var validName = regexp.MustCompile(`^[A-Z0-9][A-Z0-9_]{0,63}$`)

// FuzzEncodeRoundTrip logs any key and value and decodes the entry as
// journald would: the key must arrive as a valid journal field name (the
// normalised key), carrying the same bytes.
func FuzzEncodeRoundTrip(f *testing.F) {
	for _, seed := range [][2]string{
		{"key", "value"},
		{"", ""},
		{"_PID", "1"},
		{"2fa", "x"},
		{"http.method", "GET"},
		{"multi", "line\nbreak"},
		{"ünïcödé", "\x00\xff"},
		{"MESSAGE", "collides with the message"},
		{"a_very_long_key_that_goes_on_and_on_past_the_sixty_four_bytes_journald_allows", "v"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		rec := &recorder{}
		slog.New(NewHandler(rec, Options{Identifier: "fuzz"})).Info("m", key, value)
		fields := rec.last(t)
		name := string(appendName(nil, "", key))
		if !validName.MatchString(name) {
			t.Fatalf("key %q became %q, not a valid journal field name", key, name)
		}
		if !slices.Contains(fields[name], value) {
			t.Fatalf("key %q value %q: field %s holds %q", key, value, name, fields[name])
		}
		for got := range fields {
			if !validName.MatchString(got) {
				t.Fatalf("entry has invalid field name %q", got)
			}
		}
	})
}
