package journald

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"time"
)

// Levels for the syslog priorities that slog has no name for. slog spaces
// its levels 4 apart so that others fit in between; these follow that grid.
const (
	LevelNotice    = slog.LevelInfo + 2   // PRIORITY=5, between Info and Warn
	LevelCritical  = slog.LevelError + 4  // PRIORITY=2
	LevelAlert     = slog.LevelError + 8  // PRIORITY=1
	LevelEmergency = slog.LevelError + 12 // PRIORITY=0
)

// priority returns the syslog priority (syslog(3), the PRIORITY= field, what
// `journalctl -p` filters on) for a slog level, as one ASCII digit. A level
// gets the priority of the nearest named level at or below it, so Info+1 is
// still info and anything above LevelEmergency is emerg.
func priority(l slog.Level) byte {
	switch {
	case l >= LevelEmergency:
		return '0'
	case l >= LevelAlert:
		return '1'
	case l >= LevelCritical:
		return '2'
	case l >= slog.LevelError:
		return '3'
	case l >= slog.LevelWarn:
		return '4'
	case l >= LevelNotice:
		return '5'
	case l >= slog.LevelInfo:
		return '6'
	default:
		return '7'
	}
}

// maxNameLen is the longest field name journald accepts.
const maxNameLen = 64

// appendName appends the journal field name for key, inside the groups named
// by prefix (empty, or names already made valid here, each followed by '_').
//
// journald keeps a field only if its name matches ^[A-Z0-9_]+$, is at most 64
// bytes long and starts with neither a digit nor '_'; it drops any other field
// without a word (journal_field_valid() in systemd's sources). Rather than
// lose data that way, every key is turned into a valid name:
//
//   - a-z become A-Z and every other character becomes '_', so
//     "http.method" becomes HTTP_METHOD;
//   - a name that would start with a digit or '_' gets the prefix "X_":
//     "2fa" becomes X_2FA, "_pid" becomes X__PID, and an empty key becomes X_.
//     Names starting with '_' are journald's trusted fields (_PID, _UID,
//     _SYSTEMD_UNIT...): journald sets them from what the kernel tells it
//     about the sender, and refuses them from clients so that they can't be
//     forged;
//   - a name that journald or journalctl gives a meaning to (see reserved)
//     gets the prefix "X_" too: "priority" becomes X_PRIORITY;
//   - a name longer than 64 bytes is cut to 64.
//
// So different keys can share a name ("a.b" and "a_b", or two long keys that
// only differ after byte 64). That loses nothing: a journal entry may carry
// the same field several times, and journald keeps every value.
//
// The one prefix X_ for both kinds of renamed key, rather than a prefix
// for one and a suffix or another prefix for the other, keeps the rule
// short: a field whose name starts with X_ holds a key that could not be
// its own name.
func appendName(b []byte, prefix, key string) []byte {
	start := len(b)
	if prefix == "" && (key == "" || !isLetter(key[0])) {
		b = append(b, "X_"...)
	}
	b = append(b, prefix...)
	for _, r := range key {
		switch {
		case 'a' <= r && r <= 'z':
			b = append(b, byte(r-'a'+'A'))
		case 'A' <= r && r <= 'Z', '0' <= r && r <= '9', r == '_':
			b = append(b, byte(r))
		default:
			b = append(b, '_')
		}
	}
	if reserved(b[start:]) {
		b = append(b, "X_"...)
		copy(b[start+2:], b[start:len(b)-2])
		copy(b[start:], "X_")
	}
	if len(b)-start > maxNameLen {
		b = b[:start+maxNameLen]
	}
	return b
}

// reserved reports whether a field named name means something to journald
// or journalctl (systemd.journal-fields(7)), or is the handler's own
// OVERFLOW_FIELDS, so that only the handler may set it. An attribute may
// not:
//
//   - journald acts on the last PRIORITY=, SYSLOG_FACILITY=,
//     SYSLOG_IDENTIFIER= and MESSAGE= of an entry, for MaxLevelStore=, rate
//     limits and forwarding (journald-native.c), so an attribute "priority"
//     would decide whether the entry is kept and at what level;
//   - a second MESSAGE= is one readers do not expect (the man page asks
//     for one); journalctl -t selects on SYSLOG_IDENTIFIER=, and -u on
//     UNIT=, COREDUMP_UNIT= and OBJECT_SYSTEMD_UNIT= from root's entries;
//     MESSAGE_ID= is looked up in the message catalog (journalctl -x);
//   - from a root sender, OBJECT_PID= makes journald describe another
//     process, in the OBJECT_ fields it adds; COREDUMP_ fields are what
//     coredumpctl reads;
//   - the others (CODE_*, ERRNO, TID, INVOCATION_ID, SYSLOG_PID...) are
//     read as what the man page says they are, by people and tools alike.
//
// Names starting with '_' are journald's own and never get this far.
func reserved(name []byte) bool {
	if bytes.HasPrefix(name, []byte("OBJECT_")) || bytes.HasPrefix(name, []byte("COREDUMP_")) {
		return true
	}
	switch string(name) {
	case "MESSAGE", "MESSAGE_ID", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
		"ERRNO", "INVOCATION_ID", "USER_INVOCATION_ID",
		"SYSLOG_FACILITY", "SYSLOG_IDENTIFIER", "SYSLOG_PID", "SYSLOG_TIMESTAMP", "SYSLOG_RAW",
		"DOCUMENTATION", "TID", "UNIT", "USER_UNIT",
		overflowField: // this handler's own
		return true
	}
	return false
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// groupPrefix returns the prefix for the attributes of group name inside the
// groups named by prefix: an http group gives HTTP_, so its method attribute
// becomes HTTP_METHOD.
func groupPrefix(prefix, name string) string {
	return string(append(appendName(nil, prefix, name), '_'))
}

// appendAttr appends a as journal fields, following the rules every slog
// handler follows: values are resolved (LogValuer), an empty Attr is
// ignored, and a group's members are fields whose names start with the
// group's name (so a group without members leaves no trace), unless the
// group's key is empty: then they are inlined.
func appendAttr(b []byte, prefix string, a slog.Attr) []byte {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return b
	}
	if a.Value.Kind() == slog.KindGroup {
		if a.Key != "" {
			prefix = groupPrefix(prefix, a.Key)
		}
		for _, m := range a.Value.Group() {
			b = appendAttr(b, prefix, m)
		}
		return b
	}
	b = appendName(b, prefix, a.Key)
	b = append(b, '=')
	start := len(b)
	b = appendValue(b, a.Value)
	return endValue(b, start)
}

// appendString appends the field NAME=value.
func appendString(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=')
	start := len(b)
	b = append(b, value...)
	return endValue(b, start)
}

// appendValue appends v. Journal values are untyped bytes, so every kind is
// written as text: numbers in decimal, durations like 1.5s, times in RFC
// 3339 with nanoseconds.
func appendValue(b []byte, v slog.Value) []byte {
	switch v.Kind() {
	case slog.KindString:
		return append(b, v.String()...)
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindUint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case slog.KindFloat64:
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
	case slog.KindBool:
		return strconv.AppendBool(b, v.Bool())
	case slog.KindDuration:
		return append(b, v.Duration().String()...)
	case slog.KindTime:
		return v.Time().AppendFormat(b, time.RFC3339Nano)
	}
	// KindAny. Bytes go in as they are: journal values may be binary.
	// Anything else, errors included, is printed with %+v, as
	// slog.TextHandler does.
	if bs, ok := v.Any().([]byte); ok {
		return append(b, bs...)
	}
	return fmt.Appendf(b, "%+v", v.Any())
}

// endValue ends the field whose value was appended at b[start:], just after
// the '=' that follows its name.
//
// In the native protocol a field is NAME=value and a newline ends it, so a
// value that itself contains a newline can't be sent that way: journald
// would end the field there and read the rest as the next field. Such a
// value goes in the binary form instead: NAME, a newline, the value's length
// as a 64-bit little-endian integer, the value, a newline. That form takes
// any bytes, so multi-line messages and stack traces arrive intact.
func endValue(b []byte, start int) []byte {
	value := b[start:]
	if bytes.IndexByte(value, '\n') < 0 {
		return append(b, '\n')
	}
	n := len(value)
	b = append(b, make([]byte, 8)...) // room for the length; does not allocate
	copy(b[start+8:], b[start:start+n])
	b[start-1] = '\n' // was '='
	binary.LittleEndian.PutUint64(b[start:], uint64(n))
	return append(b, '\n')
}

// appendSource appends the CODE_ fields: where in the source the record was
// logged. pc comes from runtime.Callers (zero if unknown): it is the return
// address of a call, so the call itself is the instruction before it. That
// instruction is what runtime.CallersFrames would look up, and it names the
// right function and line even when the compiler inlined the call; looking
// it up directly saves CallersFrames' two allocations.
func appendSource(b []byte, pc uintptr) []byte {
	if pc == 0 {
		return b
	}
	fn := runtime.FuncForPC(pc - 1)
	if fn == nil {
		return b
	}
	file, line := fn.FileLine(pc - 1)
	b = appendString(b, "CODE_FILE", file)
	b = append(b, "CODE_LINE="...)
	b = strconv.AppendInt(b, int64(line), 10)
	b = append(b, '\n')
	return appendString(b, "CODE_FUNC", fn.Name())
}

// maxFields is the most fields journald takes in one entry. It ignores an
// entry with more, without a word to the sender, to bound the work one
// datagram can cost it (ENTRY_FIELD_COUNT_MAX in systemd's sources, added
// for CVE-2018-16865). The fields journald adds itself (_PID, _TRANSPORT...)
// do not count. journald 252 lets one more through, checking the count
// before it adds a field rather than after; that is not to rely on.
const maxFields = 1024

// overflowField is the field foldFields puts the fields past maxFields in.
const overflowField = "OVERFLOW_FIELDS"

// foldFields makes entry, encoded in the native protocol, fit in maxFields
// fields, so that a record with too many attributes is stored rather than
// dropped. The first maxFields-1 fields stay as they are: the handler's own
// come first, so MESSAGE, PRIORITY and the others are among them. The rest
// become the value of one last field, OVERFLOW_FIELDS, just as they were
// encoded: NAME=value lines, readable as they are in `journalctl -o
// verbose`, and exact, since a value with a newline keeps its binary form.
func foldFields(entry []byte) []byte {
	// A field takes at least 3 bytes ("A=\n"): a shorter entry fits.
	if len(entry) < 3*(maxFields+1) {
		return entry
	}
	n, keep := 0, 0
	for at := 0; at < len(entry); n++ {
		if n == maxFields-1 {
			keep = at
		}
		at = nextField(entry, at)
	}
	if n <= maxFields {
		return entry
	}
	rest := len(entry) - keep
	header := len(overflowField) + 1 + 8 // NAME, '\n', the 64-bit length
	entry = append(entry, make([]byte, header)...)
	copy(entry[keep+header:], entry[keep:keep+rest])
	copy(entry[keep:], overflowField+"\n")
	binary.LittleEndian.PutUint64(entry[keep+header-8:], uint64(rest))
	return append(entry, '\n')
}

// nextField returns where the field of entry that starts at at ends. The
// handler wrote the entry, so it is well formed (see endValue for the two
// forms a field takes).
func nextField(entry []byte, at int) int {
	end := at + bytes.IndexAny(entry[at:], "=\n")
	if entry[end] == '=' { // NAME=value\n
		return end + 1 + bytes.IndexByte(entry[end+1:], '\n') + 1
	}
	n := binary.LittleEndian.Uint64(entry[end+1:]) // NAME\n, length, value, \n
	return end + 1 + 8 + int(n) + 1
}
