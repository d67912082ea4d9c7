package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Setting is what the people who write the configuration file read of one
// key. It is the one description of the key: the README's tables, the
// manual page's CONFIGURATION section and the comments of
// deploy/config.toml are made from the Settings of the kit's Config and of
// the app's (`make docs`, tools/docs), with the default taken from the
// struct's value, so none of them can say another thing.
type Setting struct {
	// Key is the key as the file writes it: "log_level", or
	// "http.max_connections" for a key of the [http] table. A table's own
	// key ("http") introduces the table's keys.
	Key string
	// Doc says what the key does, in sentences: text for a reader, with
	// `code` in backquotes. The default and whether a reload applies it are
	// added from the struct and from Reloadable.
	Doc string
	// Reloadable: a reload (SIGHUP) applies a new value; otherwise it takes
	// effect at the next start.
	Reloadable bool
}

// Documented is a settings struct that describes its keys: Config, and an
// app's settings, each with a Settings method beside the struct.
type Documented interface {
	Settings() []Setting
}

// Settings describes each of the daemon's own settings, in the order of
// Config's fields.
func (Config) Settings() []Setting {
	return []Setting{
		{Key: "log_level", Reloadable: true,
			Doc: "The lowest level logged: `debug`, `info`, `warn` or `error`."},
		{Key: "log_format",
			Doc: "Where logs go: `auto` (the journal when standard error is connected to it, else text on standard error), `journal`, `text` or `json`. The flag `-log-format` wins over it."},
		{Key: "listen",
			Doc: "The address, host:port, to listen on when systemd passes no socket; an empty host means every address. The flag `-listen` wins over it."},
		{Key: "drain_timeout", Reloadable: true,
			Doc: "How long in-flight requests may take to finish once a stop begins. The daemon asks systemd for as long (`EXTEND_TIMEOUT_USEC=`) when it starts to drain, so `TimeoutStopSec=` need not follow."},
		{Key: "http",
			Doc: "The HTTP server's limits on what one client can hold, so that a slow or hostile client cannot starve the others."},
		{Key: "http.read_header_timeout",
			Doc: "Time a client has to send the request headers: the defence against slowloris, clients that hold a connection open by sending a header a byte at a time."},
		{Key: "http.read_timeout",
			Doc: "Time to read a whole request, body included."},
		{Key: "http.write_timeout",
			Doc: "Time from the end of the request headers to the end of the response."},
		{Key: "http.idle_timeout",
			Doc: "How long a keep-alive connection may wait for its next request."},
		{Key: "http.max_header_bytes",
			Doc: "How large the request line and headers may be; bigger ones are answered 431."},
		{Key: "http.max_connections",
			Doc: "Connections served at once. Past it, a new connection takes the slot of a slow client or of a connection idle for a second, never of one with a request on its way, or waits in the socket's backlog (docs/lifecycle.md, step 4)."},
		{Key: "instruments",
			Doc: "The kit's test instruments: endpoints under /debug/ that make the health check fail or hang, serve a slow request, panic, allocate memory or log a burst of records, for the tests that watch what systemd does then. Each needs the API token."},
		{Key: "instruments.enabled", Reloadable: true,
			Doc: "`true` serves the test instruments; off, they answer 404. Leave it off in production."},
		{Key: "instruments.start_delay",
			Doc: "With `enabled`, a warm-up of this long before the daemon reports ready, reported to systemd each second (`STATUS=`, `EXTEND_TIMEOUT_USEC=`)."},
	}
}

// Key is one key of a settings struct, as Keys finds it.
type Key struct {
	Setting
	// Table: the key is a table's, whose Doc introduces the keys in it.
	Table bool
	// Default is the key's value in the struct Keys walked; nil for a
	// table.
	Default any
}

// Keys walks settings, a struct holding its defaults, and returns its keys
// in the order of its fields, each with its Setting; a table comes before
// its keys. A key the decoder reads (by its toml tag, else its name) with
// no Setting, or a Setting that names no key, is an error: the docs would
// lack the key, or describe one the daemon refuses.
func Keys(settings Documented) ([]Key, error) {
	docs := map[string]Setting{}
	for _, s := range settings.Settings() {
		if _, dup := docs[s.Key]; dup {
			return nil, fmt.Errorf("%T: %s is described twice", settings, s.Key)
		}
		docs[s.Key] = s
	}
	var keys []Key
	var errs []error
	var walk func(prefix string, v reflect.Value)
	walk = func(prefix string, v reflect.Value) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if !f.IsExported() || f.Anonymous || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			key := prefix + name
			s, ok := docs[key]
			if !ok {
				errs = append(errs, fmt.Errorf("%T: %s has no Setting to describe it", settings, key))
			}
			delete(docs, key)
			if f.Type.Kind() == reflect.Struct && !reflect.PointerTo(f.Type).Implements(textUnmarshalerType) {
				keys = append(keys, Key{Setting: s, Table: true})
				walk(key+".", v.Field(i))
				continue
			}
			keys = append(keys, Key{Setting: s, Default: v.Field(i).Interface()})
		}
	}
	walk("", reflect.Indirect(reflect.ValueOf(settings)))
	for _, s := range settings.Settings() {
		if _, left := docs[s.Key]; left {
			errs = append(errs, fmt.Errorf("%T: the Setting %s names no key", settings, s.Key))
		}
	}
	return keys, errors.Join(errs...)
}
