package journald

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/slogtest"
	"time"

	"example.com/daemon/internal/journald/journaldtest"
)

// pkgPath is this package's import path, as CODE_FUNC names it.
var pkgPath = reflect.TypeFor[recorder]().PkgPath()

// recorder stands in for the journal socket in the encoding tests: it keeps
// every entry the handler sends, as the bytes journald would read.
type recorder struct{ entries [][]byte }

func (r *recorder) WriteMsg(entry []byte) error {
	r.entries = append(r.entries, bytes.Clone(entry))
	return nil
}

// last decodes the last entry sent.
func (r *recorder) last(t *testing.T) map[string][]string {
	t.Helper()
	if len(r.entries) == 0 {
		t.Fatal("no entry was sent")
	}
	return decode(t, r.entries[len(r.entries)-1])
}

// decode parses an entry in the native protocol the way journald does, and
// returns every value of every field. It fails the test on anything journald
// would misread.
func decode(t *testing.T, entry []byte) map[string][]string {
	t.Helper()
	fields := map[string][]string{}
	for len(entry) > 0 {
		end := bytes.IndexAny(entry, "=\n")
		if end < 0 {
			t.Fatalf("field without '=' or newline: %q", entry)
		}
		name, sep := string(entry[:end]), entry[end]
		entry = entry[end+1:]
		var value []byte
		if sep == '=' { // NAME=value\n
			nl := bytes.IndexByte(entry, '\n')
			if nl < 0 {
				t.Fatalf("field %s: value without final newline", name)
			}
			value, entry = entry[:nl], entry[nl+1:]
		} else { // NAME\n, 64-bit little-endian length, value, \n
			if len(entry) < 8 {
				t.Fatalf("field %s: binary value without length", name)
			}
			n := binary.LittleEndian.Uint64(entry)
			entry = entry[8:]
			if uint64(len(entry)) < n+1 || entry[n] != '\n' {
				t.Fatalf("field %s: binary value of %d bytes not followed by newline", name, n)
			}
			value, entry = entry[:n], entry[n+1:]
		}
		fields[name] = append(fields[name], string(value))
	}
	return fields
}

// slogtest checks a handler against the rules every slog handler follows
// (groups, empty attributes, LogValuers...), in what it wrote. What this one
// writes is what journald stores, so that is what is judged here.
func TestHandlerPassesSlogtest(t *testing.T) {
	journaldtest.Need(t)
	socket := systemSocket(t)
	var id string
	var timed *timedRecords
	slogtest.Run(t,
		func(*testing.T) slog.Handler {
			id = uniqueIdentifier()
			timed = &timedRecords{Handler: NewHandler(socket, Options{Identifier: id}), last: new(time.Time)}
			return timed
		},
		func(t *testing.T) map[string]any {
			entries := journaldtest.Read(t, "SYSLOG_IDENTIFIER="+id)
			read := time.Now()
			if len(entries) != 1 {
				t.Fatalf("journal has %d entries with SYSLOG_IDENTIFIER=%s, want 1", len(entries), id)
			}
			// Turn the entry back into what slogtest expects. It names
			// groups G, H, I and attributes a, b, k..., so in a field name
			// such as G_H_E every part but the last is a group and the
			// last, lower-cased, is the attribute's key.
			m := map[string]any{}
			for name, values := range entries[0] {
				if len(values) != 1 {
					t.Fatalf("field %s repeated: %q", name, values)
				}
				switch {
				case name == "__REALTIME_TIMESTAMP":
					// The entry's time is journald's: when it received
					// the entry (systemd.journal-fields(7)), the time
					// journalctl shows. The handler sends none (see
					// encode), so this is the record's time if journald
					// got the entry between the record's making and now.
					usec, err := strconv.ParseInt(values[0], 10, 64)
					if err != nil {
						t.Fatal(err)
					}
					stored := time.UnixMicro(usec)
					if timed.last.IsZero() {
						// slogtest's zero-time case wants no time for a
						// record without one. It does not apply: journald
						// stamps every entry, and a client can neither
						// set nor remove that stamp. Only its presence is
						// checked.
						continue
					}
					if !stored.Before(timed.last.Truncate(time.Microsecond)) && !stored.After(read) {
						m[slog.TimeKey] = stored
					} else {
						t.Errorf("journald stored time %v for a record of %v, read at %v", stored, *timed.last, read)
					}
				case strings.HasPrefix(name, "_"): // journald's own fields
				case name == "MESSAGE":
					m[slog.MessageKey] = values[0]
				case name == "PRIORITY":
					m[slog.LevelKey] = values[0]
				case name == "SYSLOG_TIMESTAMP":
					t.Errorf("SYSLOG_TIMESTAMP=%s sent; it is for syslog messages", values[0])
				case name == "CODE_FILE":
					m[slog.SourceKey] = values[0]
				case name == "CODE_LINE", name == "CODE_FUNC", name == "SYSLOG_IDENTIFIER": // slogtest has no key for these
				default:
					parts := strings.Split(name, "_")
					group := m
					for _, g := range parts[:len(parts)-1] {
						if group[g] == nil {
							group[g] = map[string]any{}
						}
						group = group[g].(map[string]any)
					}
					group[strings.ToLower(parts[len(parts)-1])] = values[0]
				}
			}
			if _, ok := entries[0]["__REALTIME_TIMESTAMP"]; !ok {
				t.Error("journal entry without __REALTIME_TIMESTAMP")
			}
			return m
		})
}

// timedRecords remembers the time of the last record it, or a handler
// derived from it, handled.
type timedRecords struct {
	slog.Handler
	last *time.Time
}

func (h *timedRecords) Handle(ctx context.Context, r slog.Record) error {
	*h.last = r.Time
	return h.Handler.Handle(ctx, r)
}

func (h *timedRecords) WithAttrs(as []slog.Attr) slog.Handler {
	return &timedRecords{Handler: h.Handler.WithAttrs(as), last: h.last}
}

func (h *timedRecords) WithGroup(name string) slog.Handler {
	return &timedRecords{Handler: h.Handler.WithGroup(name), last: h.last}
}

// attrFields returns the fields of an entry that come from attributes:
// all but those that every entry has.
func attrFields(fields map[string][]string) map[string][]string {
	for _, name := range []string{"MESSAGE", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC"} {
		delete(fields, name)
	}
	return fields
}

func TestFieldNamesAreValidJournalNames(t *testing.T) {
	long := strings.Repeat("k", 100)
	tests := []struct {
		name string
		log  func(*slog.Logger)
		want string // the name of the field the attribute becomes
	}{
		{"lower case becomes upper case", func(l *slog.Logger) { l.Info("m", "user", "v") }, "USER"},
		{"other characters become _", func(l *slog.Logger) { l.Info("m", "http.method-x y", "v") }, "HTTP_METHOD_X_Y"},
		{"a non-ASCII character becomes one _", func(l *slog.Logger) { l.Info("m", "größe", "v") }, "GR__E"},
		{"leading _ gets X_ so it is no trusted field", func(l *slog.Logger) { l.Info("m", "_PID", "v") }, "X__PID"},
		{"leading digit gets X_", func(l *slog.Logger) { l.Info("m", "2fa", "v") }, "X_2FA"},
		{"leading non-letter gets X_", func(l *slog.Logger) { l.Info("m", "ümlaut", "v") }, "X__MLAUT"},
		{"empty key gets X_", func(l *slog.Logger) { l.Info("m", "", "v") }, "X_"},
		{"long names are cut to 64 bytes", func(l *slog.Logger) { l.Info("m", long, "v") }, strings.ToUpper(long[:64])},
		{"record group prefixes its members", func(l *slog.Logger) { l.Info("m", slog.Group("http", "method", "v")) }, "HTTP_METHOD"},
		{"WithGroup prefixes later attributes", func(l *slog.Logger) { l.WithGroup("http").Info("m", "method", "v") }, "HTTP_METHOD"},
		{"nested groups join with _", func(l *slog.Logger) { l.WithGroup("a").Info("m", slog.Group("b.c", "d", "v")) }, "A_B_C_D"},
		{"group name is made valid too", func(l *slog.Logger) { l.WithGroup("_g").Info("m", "k", "v") }, "X__G_K"},
		{"inside a group a leading _ needs no X_", func(l *slog.Logger) { l.WithGroup("g").Info("m", "_k", "v") }, "G__K"},
		{"empty key inside a group", func(l *slog.Logger) { l.WithGroup("g").Info("m", "", "v") }, "G_"},
		{"group with empty key is inlined", func(l *slog.Logger) { l.Info("m", slog.Group("", "k", "v")) }, "K"},
		{"WithAttrs are prefixed by earlier groups", func(l *slog.Logger) { l.WithGroup("g").With("k", "v").Info("m") }, "G_K"},
		{"journald's own field gets X_", func(l *slog.Logger) { l.Info("m", "priority", "v") }, "X_PRIORITY"},
		{"one made by a group gets X_", func(l *slog.Logger) { l.Info("m", slog.Group("code", "file", "v")) }, "X_CODE_FILE"},
		{"one made by WithGroup gets X_", func(l *slog.Logger) { l.WithGroup("syslog").Info("m", "identifier", "v") }, "X_SYSLOG_IDENTIFIER"},
		{"one from WithAttrs gets X_", func(l *slog.Logger) { l.With("unit", "v").Info("m") }, "X_UNIT"},
		{"any OBJECT_ field gets X_", func(l *slog.Logger) { l.Info("m", "object.id", "v") }, "X_OBJECT_ID"},
		{"a field that only starts like one is kept", func(l *slog.Logger) { l.Info("m", "priority2", "v") }, "PRIORITY2"},
		{"renamed and cut to 64 bytes", func(l *slog.Logger) { l.Info("m", "object_"+long, "v") }, ("X_OBJECT_" + strings.ToUpper(long))[:64]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			tt.log(slog.New(NewHandler(rec, Options{})))
			got := attrFields(rec.last(t))
			want := map[string][]string{tt.want: {"v"}}
			if !maps.EqualFunc(got, want, slices.Equal) {
				t.Errorf("fields = %q, want %q", got, want)
			}
		})
	}
}

// journaldsFields are the fields systemd.journal-fields(7) gives a meaning
// to that a client can send, but for the families OBJECT_* and COREDUMP_*,
// of which there is one of each.
var journaldsFields = []string{
	"MESSAGE", "MESSAGE_ID", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "ERRNO",
	"INVOCATION_ID", "USER_INVOCATION_ID",
	"SYSLOG_FACILITY", "SYSLOG_IDENTIFIER", "SYSLOG_PID", "SYSLOG_TIMESTAMP", "SYSLOG_RAW",
	"DOCUMENTATION", "TID", "UNIT", "USER_UNIT",
	"OBJECT_PID", "OBJECT_SYSTEMD_UNIT", "COREDUMP_UNIT",
}

func TestAttributesDoNotSetJournaldsFields(t *testing.T) {
	for _, name := range journaldsFields {
		t.Run(name, func(t *testing.T) {
			rec := &recorder{}
			logger := slog.New(NewHandler(rec, Options{Identifier: "id"}))
			logger.Warn("m", strings.ToLower(name), "v")
			fields := rec.last(t)
			for field, values := range fields {
				if len(values) != 1 {
					t.Errorf("%s = %q, want one value", field, values)
				}
			}
			want := map[string]string{"MESSAGE": "m", "PRIORITY": "4", "SYSLOG_IDENTIFIER": "id", "X_" + name: "v"}
			for field, value := range want {
				if got := fields[field]; !slices.Equal(got, []string{value}) {
					t.Errorf("%s = %q, want %q", field, got, value)
				}
			}
			if got := fields[name]; slices.Contains(got, "v") {
				t.Errorf("%s = %q: the attribute set it", name, got)
			}
		})
	}
}

// manyAttrs returns n attributes, a0=v0 to aN=vN, the last one with a
// value of two lines.
func manyAttrs(n int) []any {
	var args []any
	for i := range n {
		args = append(args, "a"+strconv.Itoa(i), "v"+strconv.Itoa(i))
	}
	args[len(args)-1] = "two\nlines"
	return args
}

// checkAllAttrs checks that an entry with the attributes from manyAttrs(n)
// has each of them once: as a field, or in OVERFLOW_FIELDS.
func checkAllAttrs(t *testing.T, fields map[string][]string, n int) {
	t.Helper()
	all := maps.Clone(fields)
	if overflow, ok := all["OVERFLOW_FIELDS"]; ok {
		delete(all, "OVERFLOW_FIELDS")
		for name, values := range decode(t, []byte(overflow[0])) {
			all[name] = append(all[name], values...)
		}
	}
	args := manyAttrs(n)
	for i := range n {
		name, value := "A"+strconv.Itoa(i), args[2*i+1].(string)
		if got := all[name]; !slices.Equal(got, []string{value}) {
			t.Fatalf("%s = %q, want %q", name, got, value)
		}
	}
}

func TestEntryOfTooManyFieldsFoldsTheRestIntoOne(t *testing.T) {
	// Each record has 6 fields of the handler's own: MESSAGE, PRIORITY,
	// CODE_FILE, CODE_LINE, CODE_FUNC and SYSLOG_IDENTIFIER.
	tests := []struct {
		attrs  int
		folded int // attributes in OVERFLOW_FIELDS
	}{
		{maxFields - 6, 0},
		{maxFields - 5, 2}, // the last field is OVERFLOW_FIELDS
		{1100, 1100 - (maxFields - 7)},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.attrs), func(t *testing.T) {
			rec := &recorder{}
			slog.New(NewHandler(rec, Options{Identifier: "id"})).Info("m", manyAttrs(tt.attrs)...)
			fields := rec.last(t)
			n := 0
			for _, values := range fields {
				n += len(values)
			}
			if n > maxFields {
				t.Errorf("entry has %d fields, more than journald's %d", n, maxFields)
			}
			overflow := fields["OVERFLOW_FIELDS"]
			if folded := len(decode(t, []byte(strings.Join(overflow, "")))); folded != tt.folded {
				t.Errorf("OVERFLOW_FIELDS holds %d attributes, want %d", folded, tt.folded)
			}
			for _, name := range []string{"MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER", "CODE_FUNC"} {
				if len(fields[name]) != 1 {
					t.Errorf("%s = %q, want one value", name, fields[name])
				}
			}
			checkAllAttrs(t, fields, tt.attrs)
		})
	}
}

func TestKeysWithTheSameNameKeepAllValues(t *testing.T) {
	rec := &recorder{}
	slog.New(NewHandler(rec, Options{})).Info("m", "a.b", "1", "a_b", "2")
	if got := rec.last(t)["A_B"]; !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("A_B = %q, want both values", got)
	}
}

// logValuer is a slog.LogValuer that counts how often it is resolved.
type logValuer struct {
	value    string
	resolved int
}

func (v *logValuer) LogValue() slog.Value { v.resolved++; return slog.StringValue(v.value) }

type point struct{ X, Y int }

func TestValuesAreWrittenAsText(t *testing.T) {
	when := time.Date(2024, 2, 29, 13, 4, 5, 123456789, time.FixedZone("", 3600))
	tests := []struct {
		name  string
		value any
		want  string
	}{
		{"string", "plain", "plain"},
		{"int", -42, "-42"},
		{"uint", uint64(42), "42"},
		{"float", 0.25, "0.25"},
		{"bool", true, "true"},
		{"duration", 1500 * time.Millisecond, "1.5s"},
		{"time", when, "2024-02-29T13:04:05.123456789+01:00"},
		{"error", errors.New("disk full"), "disk full"},
		{"LogValuer", &logValuer{value: "resolved"}, "resolved"},
		{"bytes", []byte("raw\x00bytes"), "raw\x00bytes"},
		{"struct", point{1, 2}, "{X:1 Y:2}"},
		{"nil", nil, "<nil>"},
		{"empty string", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			slog.New(NewHandler(rec, Options{})).Info("m", "k", tt.value)
			if got := rec.last(t)["K"]; !slices.Equal(got, []string{tt.want}) {
				t.Errorf("K = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValueWithNewlineUsesBinaryForm(t *testing.T) {
	rec := &recorder{}
	slog.New(NewHandler(rec, Options{})).Info("two\nlines", "trace", "a\nb\n")
	entry := rec.entries[0]
	for _, want := range [][]byte{
		binaryField("MESSAGE", "two\nlines"),
		binaryField("TRACE", "a\nb\n"),
	} {
		if !bytes.Contains(entry, want) {
			t.Errorf("entry %q does not contain %q", entry, want)
		}
	}
	fields := decode(t, entry)
	if fields["MESSAGE"][0] != "two\nlines" || fields["TRACE"][0] != "a\nb\n" {
		t.Errorf("decoded %q", fields)
	}
}

// binaryField is the native protocol's binary form of a field, written out
// by hand.
func binaryField(name, value string) []byte {
	b := []byte(name + "\n")
	b = binary.LittleEndian.AppendUint64(b, uint64(len(value)))
	return append(b, value+"\n"...)
}

func TestLargeValueIsSentWhole(t *testing.T) {
	rec := &recorder{}
	big := strings.Repeat("0123456789abcdef", 1<<16) + "\nend" // 1 MiB and a bit
	slog.New(NewHandler(rec, Options{})).Info("m", "big", big)
	if got := rec.last(t)["BIG"]; len(got) != 1 || got[0] != big {
		t.Errorf("BIG did not arrive whole")
	}
}

func TestLevelsMapToSyslogPriorities(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  string
	}{
		{slog.LevelDebug - 4, "7"},
		{slog.LevelDebug, "7"},
		{slog.LevelInfo - 1, "7"},
		{slog.LevelInfo, "6"},
		{slog.LevelInfo + 1, "6"},
		{LevelNotice, "5"},
		{slog.LevelWarn - 1, "5"},
		{slog.LevelWarn, "4"},
		{slog.LevelError - 1, "4"},
		{slog.LevelError, "3"},
		{LevelCritical - 1, "3"},
		{LevelCritical, "2"},
		{LevelAlert, "1"},
		{LevelEmergency, "0"},
		{LevelEmergency + 100, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.level.String(), func(t *testing.T) {
			rec := &recorder{}
			h := NewHandler(rec, Options{Level: slog.Level(-100)})
			slog.New(h).Log(context.Background(), tt.level, "m")
			if got := rec.last(t)["PRIORITY"]; !slices.Equal(got, []string{tt.want}) {
				t.Errorf("PRIORITY = %q, want %s", got, tt.want)
			}
		})
	}
}

func TestLevelOptionFiltersRecords(t *testing.T) {
	rec := &recorder{}
	var level slog.LevelVar
	level.Set(slog.LevelWarn)
	logger := slog.New(NewHandler(rec, Options{Level: &level}))
	logger.Info("dropped")
	level.Set(slog.LevelInfo)
	logger.Info("kept")
	if len(rec.entries) != 1 || rec.last(t)["MESSAGE"][0] != "kept" {
		t.Errorf("sent %q, want only the record logged after lowering the level", rec.entries)
	}
}

func TestEntryNamesIdentifierAndCodeLocation(t *testing.T) {
	rec := &recorder{}
	logger := slog.New(NewHandler(rec, Options{Identifier: "mydaemon"}))
	_, file, line, _ := runtime.Caller(0)
	logger.Info("m") // must stay on the line after runtime.Caller
	fields := rec.last(t)
	want := map[string]string{
		"SYSLOG_IDENTIFIER": "mydaemon",
		"CODE_FILE":         file,
		"CODE_LINE":         strconv.Itoa(line + 1),
		"CODE_FUNC":         pkgPath + ".TestEntryNamesIdentifierAndCodeLocation",
	}
	for name, value := range want {
		if got := fields[name]; !slices.Equal(got, []string{value}) {
			t.Errorf("%s = %q, want %q", name, got, value)
		}
	}

	rec = &recorder{}
	slog.New(NewHandler(rec, Options{})).Info("m")
	if got, ok := rec.last(t)["SYSLOG_IDENTIFIER"]; ok {
		t.Errorf("SYSLOG_IDENTIFIER = %q without an Identifier, want none", got)
	}
}

func TestWithAttrsAreEncodedOnce(t *testing.T) {
	rec := &recorder{}
	v := &logValuer{value: "v"}
	logger := slog.New(NewHandler(rec, Options{})).With("k", v)
	for range 3 {
		logger.Info("m")
	}
	if v.resolved != 1 {
		t.Errorf("LogValue called %d times for 3 records, want 1", v.resolved)
	}
	if got := rec.last(t)["K"]; !slices.Equal(got, []string{"v"}) {
		t.Errorf("K = %q, want v", got)
	}
}

// socketJournal is a Transport to a datagram socket at a path, the way the
// real one sends to journald's socket. With nothing listening there, writes
// fail as they do when journald is not running.
type socketJournal struct {
	conn *net.UnixConn
	addr *net.UnixAddr
}

func newSocketJournal(t *testing.T, path string) socketJournal {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path + ".client", Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return socketJournal{conn, &net.UnixAddr{Name: path, Net: "unixgram"}}
}

func (j socketJournal) WriteMsg(entry []byte) error {
	_, err := j.conn.WriteToUnix(entry, j.addr)
	return err
}

// listen plays journald starting: it binds the socket at path.
func listen(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// receive reads the next entry journald would read from conn.
func receive(t *testing.T, conn *net.UnixConn) map[string][]string {
	t.Helper()
	buf := make([]byte, 64<<10)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return decode(t, buf[:n])
}

func TestJournalOutageFallsBackAndIsReportedOnce(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socket")
	var fallback bytes.Buffer
	logger := slog.New(NewHandler(newSocketJournal(t, path), Options{Fallback: &fallback})).With("k", "v")

	// Nothing listens yet: both records go to the fallback, after one
	// line that says why.
	logger.Info("first")
	logger.Info("second")
	lines := strings.Split(strings.TrimSpace(fallback.String()), "\n")
	if len(lines) != 3 ||
		!strings.Contains(lines[0], "journal unavailable") || !strings.Contains(lines[0], "no such file") ||
		!strings.Contains(lines[1], "msg=first k=v") || !strings.Contains(lines[2], "msg=second k=v") {
		t.Fatalf("fallback got:\n%s\nwant a notice with the error, then both records", fallback.String())
	}

	// journald is back: records go to the journal again.
	fallback.Reset()
	journal := listen(t, path)
	logger.Info("third")
	if got := receive(t, journal)["MESSAGE"]; !slices.Equal(got, []string{"third"}) {
		t.Errorf("journal got MESSAGE %q, want third", got)
	}

	// And gone again: that is a new outage, reported again.
	journal.Close()
	logger.Info("fourth")
	if got := fallback.String(); strings.Count(got, "journal unavailable") != 1 || !strings.Contains(got, "msg=fourth") {
		t.Errorf("fallback got:\n%s\nwant a new notice and the record", got)
	}
}

func TestOnJournalErrorIsCalledOncePerOutage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socket")
	var fallback bytes.Buffer
	var reported []error
	logger := slog.New(NewHandler(newSocketJournal(t, path), Options{
		Fallback:       &fallback,
		OnJournalError: func(err error) { reported = append(reported, err) },
	}))
	logger.Info("first")
	logger.Info("second")
	if len(reported) != 1 {
		t.Fatalf("OnJournalError called %d times for 2 failed records, want 1", len(reported))
	}
	if got := fallback.String(); strings.Contains(got, "journal unavailable") || strings.Count(got, "\n") != 2 {
		t.Errorf("fallback got:\n%s\nwant just the 2 records", got)
	}
}

func TestWithoutFallbackHandleReturnsTheError(t *testing.T) {
	h := NewHandler(newSocketJournal(t, filepath.Join(t.TempDir(), "socket")), Options{})
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0)
	if err := h.Handle(context.Background(), r); err == nil {
		t.Error("Handle returned nil while nothing listens on the socket")
	}
}

func TestSourceMatchesCallersFrames(t *testing.T) {
	// The PCs of this goroutine's stack, as slog.Logger gets them; some of
	// their frames were inlined by the compiler.
	pcs := make([]uintptr, 64)
	pcs = pcs[:runtime.Callers(1, pcs)]
	for _, pc := range pcs {
		f, _ := runtime.CallersFrames([]uintptr{pc}).Next()
		want := map[string][]string{
			"CODE_FILE": {f.File},
			"CODE_LINE": {strconv.Itoa(f.Line)},
			"CODE_FUNC": {f.Function},
		}
		if got := decode(t, appendSource(nil, pc)); !maps.EqualFunc(got, want, slices.Equal) {
			t.Errorf("pc %#x: got %q, want %q", pc, got, want)
		}
	}
}
