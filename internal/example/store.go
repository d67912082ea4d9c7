package example

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// store keeps the notes in a bbolt database in the state directory: one
// file, a B+tree with one key per note, written with copy-on-write pages
// and fsynced at each commit, so that a crash at any instant leaves the
// last committed state and a write costs O(log n) whatever the number of
// notes.
//
// Reads run in bbolt read transactions, side by side. Writes, and the
// health check, go through the app's work loop, one goroutine that takes
// requests from a channel in order: when it hangs (a stuck disk under an
// fsync, a deadlock, or the debug switch) the health check fails and the
// watchdog is no longer fed, while reads go on.
type store struct {
	db   *bolt.DB
	reqs chan func()
}

// maxNameBytes is the longest name a note may have: bbolt refuses a longer
// key (its MaxKeySize), and the handler refuses the name before the store
// sees it.
const maxNameBytes = bolt.MaxKeySize

// The database's file in the state directory, and the JSON file of earlier
// versions, which openStore migrates.
const (
	dbFile   = "notes.db"
	jsonFile = "notes.json"
)

// The buckets: the notes by name, and the totals the limits are checked
// against, kept in the same transactions as the notes so that they never
// disagree.
var (
	notesBucket = []byte("notes")
	metaBucket  = []byte("meta")
	countKey    = []byte("count") // number of notes
	bytesKey    = []byte("bytes") // sum of their names' and bodies' lengths
)

// lockWait is how long openStore waits for another process's lock on the
// database: long enough for a daemon that is exiting to let go, short
// enough that a second daemon on the same directory fails at once.
const lockWait = 100 * time.Millisecond

// openStore opens (or creates) the database in dir. A JSON state file
// from an earlier version is migrated into it first.
func openStore(dir string) (*store, error) {
	path := filepath.Join(dir, dbFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockWait})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("state directory %s is in use by another process (it holds the lock on %s)", dir, dbFile)
	}
	if err != nil {
		return nil, fmt.Errorf("open state %s: %w", path, err)
	}
	s := &store{db: db, reqs: make(chan func())}
	if err := s.migrate(filepath.Join(dir, jsonFile)); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// migrate imports the notes of a JSON state file from an earlier version
// in one transaction, and removes the file only once that transaction is on
// disk. A note the database has already is newer and stays: a crash between
// the commit and the removal leaves the file, and the next start imports
// nothing from it twice.
func (s *store) migrate(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s.ensureBuckets()
	}
	if err != nil {
		return fmt.Errorf("migrate %s: %w", path, err)
	}
	var notes map[string]string
	if err := json.Unmarshal(data, &notes); err != nil {
		return fmt.Errorf("migrate %s: %w", path, err)
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := createBuckets(tx); err != nil {
			return err
		}
		count, bytes := totals(tx)
		b := tx.Bucket(notesBucket)
		for name, note := range notes {
			if b.Get([]byte(name)) != nil {
				continue
			}
			if err := b.Put([]byte(name), []byte(note)); err != nil {
				return err
			}
			count, bytes = count+1, bytes+uint64(len(name)+len(note))
		}
		return putTotals(tx, count, bytes)
	})
	if err != nil {
		return fmt.Errorf("migrate %s: %w", path, err)
	}
	// Committed and fsynced: the file's notes are in the database.
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("migrate: remove %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// ensureBuckets creates the buckets in a new database. An existing one has
// them, and is only read: a write transaction would cost the start an
// fsync.
func (s *store) ensureBuckets() error {
	var have bool
	if err := s.db.View(func(tx *bolt.Tx) error {
		have = tx.Bucket(notesBucket) != nil && tx.Bucket(metaBucket) != nil
		return nil
	}); err != nil || have {
		return err
	}
	return s.db.Update(createBuckets)
}

func createBuckets(tx *bolt.Tx) error {
	for _, name := range [][]byte{notesBucket, metaBucket} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	return nil
}

// close closes the database; every write it acknowledged is on disk.
func (s *store) close() error { return s.db.Close() }

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

// do runs f on the work loop and waits for it. ctx bounds the wait for
// the loop to take f: a loop that takes nothing is not answering. Once the
// loop has taken f, do waits for f to end whatever ctx says: f has begun a
// write that will be committed or refused whole, and the caller must learn
// which. Giving up on it then, because a client left the instant after its
// write was taken, would report a failure for a note that is stored. Only
// one f runs at a time, so at most one caller waits past its ctx.
func (s *store) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case s.reqs <- func() { f(); close(done) }:
	case <-ctx.Done():
		return fmt.Errorf("work loop not answering: %w", context.Cause(ctx))
	}
	<-done
	return nil
}

// get reads a note, beside any other reads and writes.
func (s *store) get(name string) (note string, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(notesBucket).Get([]byte(name))
		// A value is valid only inside its transaction: copy it out.
		note, ok = string(v), v != nil
		return nil
	})
	return note, ok, err
}

// limits bound what put stores.
type limits struct {
	notes int   // how many notes
	bytes int64 // their names and bodies, in all
}

// errFull is a write refused because the store is full: past a limit of
// the configuration, or of the disk. Nothing stored before is touched. why
// is for the client; err, if any, is the system's error, for the log.
type errFull struct {
	why string
	err error
}

func (e errFull) Error() string {
	if e.err != nil {
		return e.why + ": " + e.err.Error()
	}
	return e.why
}

func (e errFull) Unwrap() error { return e.err }

// put stores a note, or replaces one, once the work loop gets to it. It
// returns when the note is on disk, with errFull when a limit or the disk
// refuses it.
func (s *store) put(ctx context.Context, name, note string, l limits) error {
	var werr error
	err := s.do(ctx, func() {
		werr = s.db.Update(func(tx *bolt.Tx) error {
			count, bytes := totals(tx)
			old := tx.Bucket(notesBucket).Get([]byte(name))
			if old != nil {
				bytes -= uint64(len(name) + len(old))
			} else {
				count++
			}
			bytes += uint64(len(name) + len(note))
			// Only what grows the store is refused: a note replaced by
			// one no larger is let through past a limit that a reload
			// lowered, or that a migration overran.
			switch {
			case old == nil && count > uint64(l.notes):
				return errFull{why: fmt.Sprintf("the store holds its limit of %d notes (max_notes)", l.notes)}
			case len(note) > len(old) && bytes > uint64(l.bytes):
				return errFull{why: fmt.Sprintf("the note would take the store past its limit of %d bytes (max_state_bytes)", l.bytes)}
			}
			if err := tx.Bucket(notesBucket).Put([]byte(name), []byte(note)); err != nil {
				return err
			}
			return putTotals(tx, count, bytes)
		})
	})
	if err != nil {
		return err
	}
	return diskFull(werr)
}

// diskFull turns a commit a full disk, or a quota, refused into errFull;
// bbolt then keeps the last committed state.
func diskFull(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return errFull{"the disk holding the state is full", err}
	}
	return err
}

func totals(tx *bolt.Tx) (count, bytes uint64) {
	m := tx.Bucket(metaBucket)
	if v := m.Get(countKey); len(v) == 8 {
		count = binary.BigEndian.Uint64(v)
	}
	if v := m.Get(bytesKey); len(v) == 8 {
		bytes = binary.BigEndian.Uint64(v)
	}
	return count, bytes
}

func putTotals(tx *bolt.Tx, count, bytes uint64) error {
	m := tx.Bucket(metaBucket)
	if err := m.Put(countKey, binary.BigEndian.AppendUint64(nil, count)); err != nil {
		return err
	}
	return m.Put(bytesKey, binary.BigEndian.AppendUint64(nil, bytes))
}

// syncDir fsyncs a directory, so that a file removed from it stays
// removed after a crash.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
