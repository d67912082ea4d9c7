package example

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/daemon/internal/config"
)

// TestLimitsAnswer507AndKeepWhatWasStored: past max_notes, or
// max_state_bytes, a new note gets 507 and a message naming the limit,
// while replacing a note within the limits still works and every note
// stored before is unchanged. A reload's new limits apply at once.
func TestLimitsAnswer507AndKeepWhatWasStored(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxNotes, cfg.MaxStateBytes = 3, 1000
	a := startApp(t, t.TempDir(), cfg)
	for i := range 3 {
		if rec := do(a, "PUT", fmt.Sprintf("/notes/n%d", i), "first"); rec.Code != http.StatusNoContent {
			t.Fatalf("PUT n%d: %d %s", i, rec.Code, rec.Body)
		}
	}
	if rec := do(a, "PUT", "/notes/n3", "x"); rec.Code != http.StatusInsufficientStorage || !strings.Contains(rec.Body.String(), "max_notes") {
		t.Errorf("a fourth note under max_notes = 3: %d %q, want 507 naming max_notes", rec.Code, rec.Body)
	}
	if rec := do(a, "PUT", "/notes/n0", "second"); rec.Code != http.StatusNoContent {
		t.Errorf("replacing a note at max_notes: %d, want 204", rec.Code)
	}
	if rec := do(a, "PUT", "/notes/n1", strings.Repeat("y", 990)); rec.Code != http.StatusInsufficientStorage || !strings.Contains(rec.Body.String(), "max_state_bytes") {
		t.Errorf("a note past max_state_bytes = 1000: %d %q, want 507 naming max_state_bytes", rec.Code, rec.Body)
	}
	for name, want := range map[string]string{"n0": "second", "n1": "first", "n2": "first"} {
		if rec := do(a, "GET", "/notes/"+name, ""); rec.Code != 200 || rec.Body.String() != want {
			t.Errorf("GET %s after the refusals: %d %q, want %q", name, rec.Code, rec.Body, want)
		}
	}
	if rec := do(a, "GET", "/notes/n3", ""); rec.Code != http.StatusNotFound {
		t.Errorf("the refused note: %d, want 404", rec.Code)
	}
	cfg.MaxNotes = 4
	a.Apply(cfg)
	if rec := do(a, "PUT", "/notes/n3", "x"); rec.Code != http.StatusNoContent {
		t.Errorf("a fourth note after a reload raised max_notes to 4: %d", rec.Code)
	}
}

// TestTheTotalsSurviveARestart: the count and size the limits are checked
// against are stored with the notes, not recounted from memory.
func TestTheTotalsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.MaxNotes = 2
	a := startApp(t, dir, cfg)
	do(a, "PUT", "/notes/a", "1")
	do(a, "PUT", "/notes/b", "2")
	a.Close()
	b := startApp(t, dir, cfg)
	if rec := do(b, "PUT", "/notes/c", "3"); rec.Code != http.StatusInsufficientStorage {
		t.Errorf("a third note after a restart under max_notes = 2: %d, want 507", rec.Code)
	}
}

// TestAFullDiskAnswers507AndKeepsWhatWasStored: on a file system that fills
// up (a 512 KiB tmpfs), a write the disk refuses gets 507 and the daemon
// stays healthy and serves reads; after a restart every note that got a 204
// is there.
func TestAFullDiskAnswers507AndKeepsWhatWasStored(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=512k,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a small tmpfs here (needs root): %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	cfg := DefaultConfig()
	a := startApp(t, dir, cfg)
	stored := map[string]string{}
	var full string
	for i := 0; full == "" && i < 1000; i++ {
		name, note := fmt.Sprintf("n%d", i), strings.Repeat(fmt.Sprint(i%10), 8<<10)
		switch rec := do(a, "PUT", "/notes/"+name, note); rec.Code {
		case http.StatusNoContent:
			stored[name] = note
		case http.StatusInsufficientStorage:
			full = rec.Body.String()
		default:
			t.Fatalf("PUT %s: %d %q, want 204 or 507", name, rec.Code, rec.Body)
		}
	}
	if full == "" || !strings.Contains(full, "disk") || strings.Contains(full, dir) {
		t.Fatalf("the disk never filled up (%d notes stored), or the refusal does not say so, or names the server's files: %q", len(stored), full)
	}
	t.Logf("%d notes of 8 KiB stored before: %s", len(stored), strings.TrimSpace(full))
	if err := a.Check(t.Context()); err != nil {
		t.Errorf("health check on a full disk: %v", err)
	}
	for name, want := range stored {
		if rec := do(a, "GET", "/notes/"+name, ""); rec.Body.String() != want {
			t.Fatalf("GET %s on a full disk: %d, %d bytes", name, rec.Code, rec.Body.Len())
		}
	}
	a.Close()
	b := startApp(t, dir, cfg)
	for name, want := range stored {
		if rec := do(b, "GET", "/notes/"+name, ""); rec.Body.String() != want {
			t.Fatalf("GET %s after a restart: %d, %d bytes", name, rec.Code, rec.Body.Len())
		}
	}
}

// TestASecondDaemonOnTheStateDirectoryFailsAtOnce: the database's lock
// keeps a second daemon (here a second open, which flock(2) treats as
// another owner) out of the directory, with a message naming it, without
// waiting for the first to let go.
func TestASecondDaemonOnTheStateDirectoryFailsAtOnce(t *testing.T) {
	dir := t.TempDir()
	first, err := openStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer first.close()
	start := time.Now()
	second, err := openStore(dir)
	if err == nil {
		second.close()
		t.Fatal("a second store opened the directory the first holds")
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use") {
		t.Errorf("the second open says %q; want the directory named and why", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the second open took %s to fail", took)
	}
}

// TestAJSONStateFileIsMigrated: the notes.json of an earlier version is
// imported on the first start and removed once the database holds it; a
// note already in the database (the import committed, the removal not
// done) is newer and stays.
func TestAJSONStateFileIsMigrated(t *testing.T) {
	dir := t.TempDir()
	old := map[string]string{"todo": "buy milk", "idea": "a note"}
	writeJSON := func(notes map[string]string) {
		data, _ := json.Marshal(notes)
		if err := os.WriteFile(filepath.Join(dir, jsonFile), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeJSON(old)
	a := startApp(t, dir, DefaultConfig())
	for name, want := range old {
		if rec := do(a, "GET", "/notes/"+name, ""); rec.Body.String() != want {
			t.Errorf("GET %s after the migration: %d %q, want %q", name, rec.Code, rec.Body, want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, jsonFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s after the migration: %v, want it removed", jsonFile, err)
	}
	do(a, "PUT", "/notes/todo", "bought")
	a.Close()
	writeJSON(old) // as if the removal had not happened
	b := startApp(t, dir, DefaultConfig())
	if rec := do(b, "GET", "/notes/todo", ""); rec.Body.String() != "bought" {
		t.Errorf("a note written after the migration, then the file again: %q, want the newer note", rec.Body)
	}
	cfg := DefaultConfig()
	cfg.MaxNotes = 2
	b.Apply(cfg)
	if rec := do(b, "PUT", "/notes/third", "x"); rec.Code != http.StatusInsufficientStorage {
		t.Errorf("the migration's notes not counted: a third note under max_notes = 2 got %d", rec.Code)
	}
}

// TestABrokenJSONStateFileStopsTheStart: a state file that cannot be read
// is not migrated, not removed and not ignored.
func TestABrokenJSONStateFileStopsTheStart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, jsonFile)
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := openStore(dir); err == nil || !strings.Contains(err.Error(), jsonFile) {
		if s != nil {
			s.close()
		}
		t.Errorf("openStore with a broken %s: %v, want an error naming it", jsonFile, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the broken file is gone: %v", err)
	}
}

// TestTheByteLimitCountsWhatANoteReplaces: max_state_bytes counts the
// notes as they are, so replacing one frees what it took, a store exactly
// at the limit is allowed, and one byte more is not.
func TestTheByteLimitCountsWhatANoteReplaces(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxStateBytes = 100
	a := startApp(t, t.TempDir(), cfg)
	note := strings.Repeat("x", 60) // with its name "n", 61 bytes
	for i := range 3 {
		if rec := do(a, "PUT", "/notes/n", note); rec.Code != http.StatusNoContent {
			t.Fatalf("replacing a 61-byte note under max_state_bytes = 100, time %d: %d %s", i, rec.Code, rec.Body)
		}
	}
	if rec := do(a, "PUT", "/notes/m", strings.Repeat("y", 38)); rec.Code != http.StatusNoContent {
		t.Errorf("a note that fills the store to exactly 100 bytes: %d %s", rec.Code, rec.Body)
	}
	if rec := do(a, "PUT", "/notes/m", strings.Repeat("y", 39)); rec.Code != http.StatusInsufficientStorage {
		t.Errorf("the same note one byte larger: %d, want 507", rec.Code)
	}
}

// TestAReplaceThatDoesNotGrowPassesALoweredLimit: after a reload lowers the
// limits below what is stored, a note can still be replaced by one no
// larger; only growth is refused.
func TestAReplaceThatDoesNotGrowPassesALoweredLimit(t *testing.T) {
	cfg := DefaultConfig()
	a := startApp(t, t.TempDir(), cfg)
	for _, name := range []string{"a", "b", "c"} {
		do(a, "PUT", "/notes/"+name, "twelve bytes")
	}
	cfg.MaxNotes, cfg.MaxStateBytes = 1, 10
	a.Apply(cfg)
	if rec := do(a, "PUT", "/notes/a", "shorter"); rec.Code != http.StatusNoContent {
		t.Errorf("a smaller note in place of one, over lowered limits: %d %s", rec.Code, rec.Body)
	}
	if rec := do(a, "PUT", "/notes/b", "a longer note than it was"); rec.Code != http.StatusInsufficientStorage {
		t.Errorf("a larger note over the lowered max_state_bytes: %d, want 507", rec.Code)
	}
	if rec := do(a, "PUT", "/notes/d", "x"); rec.Code != http.StatusInsufficientStorage {
		t.Errorf("a new note over the lowered max_notes: %d, want 507", rec.Code)
	}
}

func TestAQuotaIsAFullDisk(t *testing.T) {
	for _, errno := range []syscall.Errno{syscall.ENOSPC, syscall.EDQUOT} {
		err := diskFull(fmt.Errorf("write notes.db: %w", errno))
		var full errFull
		if !errors.As(err, &full) || strings.Contains(full.why, "notes.db") {
			t.Errorf("%v: %v, want errFull without the file's name for the client", errno, err)
		}
	}
	if err := diskFull(syscall.EIO); !errors.Is(err, syscall.EIO) || errors.As(err, new(errFull)) {
		t.Errorf("EIO: %v, want it as it is", err)
	}
}

// TestAMigrationThatFailsKeepsTheFile: a JSON state the database refuses
// (bbolt takes no empty key) stops the start, and the file stays.
func TestAMigrationThatFailsKeepsTheFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, jsonFile)
	if err := os.WriteFile(path, []byte(`{"a":"1","":"x"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := openStore(dir); err == nil {
		s.close()
		t.Fatal("the migration of a note bbolt cannot store succeeded")
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the JSON file after a failed migration: %v, want it kept", err)
	}
}

func TestNonPositiveLimitsAreRefused(t *testing.T) {
	for _, line := range []string{"max_notes = 0", "max_note_bytes = -1", "max_state_bytes = 0"} {
		cfg := DefaultConfig()
		_, err := config.Parse("config.toml", []byte(line), &cfg)
		key, _, _ := strings.Cut(line, " ")
		if err == nil || !strings.Contains(err.Error(), "config.toml") || !strings.Contains(err.Error(), key) {
			t.Errorf("%s: %v, want an error naming the file and the key", line, err)
		}
	}
}
