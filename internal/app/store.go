package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// store keeps the notes in one file in the state directory and owns them
// from a single goroutine, the app's work loop: every read and write is a
// request on a channel, answered in order. The health check is one more
// such request, so when the loop hangs (a stuck disk, a deadlock, or the
// debug switch) the health check fails and the watchdog stops being fed.
type store struct {
	path  string
	notes map[string]string
	reqs  chan func()
}

const stateFile = "notes.json"

// openStore loads the notes saved in dir, if any.
func openStore(dir string) (*store, error) {
	s := &store{
		path:  filepath.Join(dir, stateFile),
		notes: map[string]string{},
		reqs:  make(chan func()),
	}
	data, err := os.ReadFile(s.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("load state: %w", err)
	}
	if err := json.Unmarshal(data, &s.notes); err != nil {
		return nil, fmt.Errorf("load state %s: %w", s.path, err)
	}
	return s, nil
}

// run is the work loop. It returns when ctx is done.
func (s *store) run(ctx context.Context) {
	for {
		select {
		case req := <-s.reqs:
			req()
		case <-ctx.Done():
			return
		}
	}
}

// do runs f on the work loop and waits for it, or for ctx.
func (s *store) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case s.reqs <- func() { f(); close(done) }:
	case <-ctx.Done():
		return fmt.Errorf("work loop not answering: %w", context.Cause(ctx))
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("work loop not answering: %w", context.Cause(ctx))
	}
}

func (s *store) get(ctx context.Context, name string) (note string, ok bool, err error) {
	err = s.do(ctx, func() { note, ok = s.notes[name] })
	return note, ok, err
}

func (s *store) put(ctx context.Context, name, note string) error {
	var werr error
	err := s.do(ctx, func() {
		next := make(map[string]string, len(s.notes)+1)
		for k, v := range s.notes {
			next[k] = v
		}
		next[name] = note
		// The map in memory changes only once the file holds it: what a
		// client was told is stored survives a crash.
		if werr = s.save(next); werr == nil {
			s.notes = next
		}
	})
	if err != nil {
		return err
	}
	return werr
}

// save replaces the state file so that after a crash at any instant it holds
// either the old content or the new, never a mix or nothing: write a
// temporary file in the same directory, fsync it, rename it over the old one
// (rename(2) is atomic within a file system), then fsync the directory so the
// rename itself is on disk.
func (s *store) save(notes map[string]string) error {
	data, err := json.Marshal(notes)
	if err != nil {
		return err
	}
	dir := filepath.Dir(s.path)
	tmp, err := os.CreateTemp(dir, stateFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("save state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("save state: sync %s: %w", dir, err)
	}
	return nil
}
