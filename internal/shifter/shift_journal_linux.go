//go:build linux

package shifter

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/nscap/nscap/internal/sys"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/jobstate"
)

// The journal of a shift lives in the state directory of its user (see
// [ShiftOptions.StateDir]), named after the tree's device and inode, from
// the start of a run to its end:
//
//	nscap shift journal 1
//	root DEV INO BTIME
//	maps 0:100000:65536 0:100000:65536 0:200000:65536 0:200000:65536
//	fix INO UID GID MODE CAPS "usr/bin/ping"
//
// A "fix" record names a non-directory the run is about to chown, with
// the owner it gets, and the mode (octal) and cap (hex; "-" for none) to
// give it back after the kernel cleared them. It is written with one
// write(2) and fdatasync'ed before the chown. The file is locked (flock)
// while a run goes on.

const shiftJournalHeader = "nscap shift journal 1"

// shiftFix is a "fix" record.
type shiftFix struct {
	ino      uint64
	uid, gid uint32
	mode     uint32
	caps     []byte
	path     string
}

// shiftJournal is the open, locked journal of a run.
type shiftJournal struct {
	*jobstate.File
	mu    sync.Mutex
	fixes []shiftFix // of an interrupted run, read when opened
	// other is the "maps" record of an interrupted run with other maps
	// ("" for none): after its fixes are replayed, [shiftJournal.restart]
	// begins this run's journal.
	other string
	root  string // the "root" record of the tree
	// resumed is set when the journal of an interrupted run was found.
	resumed bool
}

// shiftMapsRecord is the "maps" record of a run's options.
func shiftMapsRecord(o *ShiftOptions) string {
	return fmt.Sprintf("maps %s %s %s %s", o.FromUID, o.FromGID, o.ToUID, o.ToGID)
}

// openShiftJournal opens and locks the journal of the tree rootfd (named
// root), reading the fixes of an interrupted run (with other maps: other
// is set).
func openShiftJournal(stateDir, root string, rootfd int, o *ShiftOptions) (*shiftJournal, error) {
	id, err := jobstate.Identify(rootfd)
	if err != nil {
		return nil, &fs.PathError{Op: "statx", Path: root, Err: err}
	}
	dirfd, dirPath, err := jobstate.DirFor(stateDir, "shift", true)
	if err != nil {
		return nil, err
	}
	ls, err := jobstate.Open(dirfd, dirPath, id.FileName())
	if err != nil {
		if errors.Is(err, sys.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (its journal %s is locked)", root, ErrShiftRunning, path.Join(dirPath, id.FileName()))
		}
		return nil, err
	}
	j := &shiftJournal{File: ls}
	p := ls.Path
	fail := func(err error) (*shiftJournal, error) {
		_ = ls.Close(false)
		return nil, err
	}
	b, err := j.ReadAll()
	if err != nil {
		return fail(&fs.PathError{Op: "read", Path: p, Err: err})
	}
	lines := strings.Split(string(b), "\n")
	lines = lines[:len(lines)-1] // the last is empty or cut short by a kill
	j.root = "root " + strings.TrimPrefix(id.Record(), "dest ")
	if len(lines) >= 3 && lines[0] == shiftJournalHeader && lines[1] == j.root {
		j.resumed = true
		if lines[2] != shiftMapsRecord(o) {
			j.other = strings.TrimPrefix(lines[2], "maps ")
		}
		for _, l := range lines[3:] {
			if f, ok := parseShiftFix(l); ok {
				j.fixes = append(j.fixes, f)
			}
		}
		return j, nil
	}
	// New, cut short before its maps, or left by another tree that had
	// this inode: start afresh.
	if err := j.restart(o); err != nil {
		return fail(err)
	}
	return j, nil
}

// restart empties the journal and writes this run's header.
func (j *shiftJournal) restart(o *ShiftOptions) error {
	if err := j.F.Truncate(0); err != nil {
		return &fs.PathError{Op: "truncate", Path: j.Path, Err: err}
	}
	j.fixes, j.other = nil, ""
	return j.write(shiftJournalHeader+"\n"+j.root+"\n"+shiftMapsRecord(o)+"\n", true)
}

// parseShiftFix parses a "fix" record.
func parseShiftFix(l string) (f shiftFix, ok bool) {
	rest, ok := strings.CutPrefix(l, "fix ")
	if !ok {
		return f, false
	}
	w := strings.SplitN(rest, " ", 6)
	if len(w) != 6 {
		return f, false
	}
	ino, e1 := strconv.ParseUint(w[0], 10, 64)
	uid, e2 := strconv.ParseUint(w[1], 10, 32)
	gid, e3 := strconv.ParseUint(w[2], 10, 32)
	mode, e4 := strconv.ParseUint(w[3], 8, 32)
	p, e5 := strconv.Unquote(w[5])
	if e1 != nil || e2 != nil || e3 != nil || e4 != nil || e5 != nil || mode > 0o7777 {
		return f, false
	}
	if w[4] != "-" {
		c, err := hex.DecodeString(w[4])
		if err != nil {
			return f, false
		}
		if _, err := archive.CapsRoot(c); err != nil {
			return f, false
		}
		f.caps = c
	}
	f.ino, f.uid, f.gid, f.mode, f.path = ino, uint32(uid), uint32(gid), uint32(mode), p
	return f, true
}

// fixRecord is the "fix" record of an inode about to be chowned.
func fixRecord(ino uint64, uid, gid, mode uint32, caps []byte, rel string) string {
	c := "-"
	if caps != nil {
		c = hex.EncodeToString(caps)
	}
	return fmt.Sprintf("fix %d %d %d %o %s %s\n", ino, uid, gid, mode, c, strconv.Quote(rel))
}

func (j *shiftJournal) write(s string, sync bool) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if _, err := j.F.WriteString(s); err != nil {
		return fmt.Errorf("journal %s: %w", j.Path, err)
	}
	if sync {
		if err := sys.Fdatasync(int(j.F.Fd())); err != nil {
			return &fs.PathError{Op: "fdatasync", Path: j.Path, Err: err}
		}
	}
	return nil
}
