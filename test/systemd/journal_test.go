//go:build systemd

package systemd_test

import (
	"strconv"
	"strings"
	"testing"
)

// TestJournalEntriesAreStructured: the daemon logs with journald's native
// protocol, so every entry carries its priority, the source location and
// the log call's own attributes as fields.
func TestJournalEntriesAreStructured(t *testing.T) {
	cursor := journalCursor(t)
	pid := freshStart(t, baseConfig)
	get(t, baseURL(t)+"/healthz")
	systemctl(t, "stop", unit) // the stop is logged too; and the journal is flushed

	entries := journal(t, cursor, "_PID="+strconv.Itoa(pid))
	if len(entries) == 0 {
		t.Fatalf("no journal entries from the daemon (PID %d)", pid)
	}
	appFields := map[string]bool{}
	for _, e := range entries {
		msg, _ := e["MESSAGE"].(string)
		if tr := e["_TRANSPORT"]; tr != "journal" {
			t.Errorf("entry %q came by _TRANSPORT=%v, want journal (the native protocol)", msg, tr)
		}
		for _, f := range []string{"PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC", "MESSAGE"} {
			if _, ok := e[f]; !ok {
				t.Errorf("entry %q has no %s", msg, f)
			}
		}
		if f, _ := e["CODE_FILE"].(string); f != "" && !strings.HasSuffix(f, ".go") {
			t.Errorf("entry %q: CODE_FILE=%q is not a Go file", msg, f)
		}
		for k := range e {
			if !journalOwnField(k) {
				appFields[k] = true
			}
		}
	}
	if len(appFields) == 0 {
		t.Errorf("no entry carries a field of the daemon's own (a slog attribute); entries:\n%s", strings.Join(messages(entries), "\n"))
	}
	t.Logf("%d entries; the daemon's own fields: %v", len(entries), keys(appFields))
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// journalOwnField reports whether a journal field is one journald or the
// logging protocol defines, rather than one the daemon's code chose.
func journalOwnField(k string) bool {
	if strings.HasPrefix(k, "_") {
		return true // trusted fields added by journald, and __CURSOR etc.
	}
	switch k {
	case "MESSAGE", "MESSAGE_ID", "PRIORITY", "CODE_FILE", "CODE_LINE", "CODE_FUNC",
		"ERRNO", "INVOCATION_ID", "USER_INVOCATION_ID", "SYSLOG_IDENTIFIER",
		"SYSLOG_FACILITY", "SYSLOG_PID", "SYSLOG_TIMESTAMP", "TID", "UNIT", "USER_UNIT":
		return true
	}
	return false
}
