//go:build linux

package restorer

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strconv"
	"strings"

	"github.com/nscap/nscap/internal/sys"

	"github.com/nscap/nscap/internal/jobstate"
)

// The state of a restore is kept outside its destination: DEST may be the
// rootfs of a running container, whose root writes there, and nothing it
// plants in DEST may pass for the record of a restore (issue 12, item 8).
// Each restore keeps one file in the state directory of its user, named
// after DEST's device and inode, from its start to its end:
//
//	nscap restore state 1
//	dest DEV INO BTIME        DEST's identity (BTIME "-" when unknown)
//	path "/var/lib/ct2/rootfs"
//	token 0123456789abcdef    one per run: its temporary names carry it
//	staging .nscap-staging.0123456789abcdef
//	direct
//
// Records are appended, each by one write(2), before what they describe
// exists: a restore killed at any point leaves a file that names every
// temporary name and staging directory it may have left, and nothing
// else. The file is locked (flock(2)) while the restore runs, and removed
// when it ends.

// stateHeader is the first line of a state file.
const stateHeader = "nscap restore state 1"

// ErrRestoreRunning is returned by [Restore] when another restore into
// the same destination is running (it holds the lock of its state).
var ErrRestoreRunning = errors.New("backup: another restore into this destination is running")

// identify returns the identity of the destination.
func (d *destDir) identify() (jobstate.TreeID, error) {
	id, err := jobstate.Identify(d.fd)
	if err != nil {
		return id, d.pathErr("statx", ".", err)
	}
	return id, nil
}

// restoreState is the state file of a restore, or what Verify read of
// one.
type restoreState struct {
	jobstate.File // dirfd -1 and f nil when read by Verify

	// What the file recorded when it was opened: resumed is set when it
	// is the state of a restore into the same destination that did not
	// end (killed).
	resumed bool
	direct  bool
	tokens  map[string]bool
	staging []string
}

// parseState reads the records of a state file of the destination id.
// A record cut short by a kill (no newline) is ignored: what it was to
// describe was not made yet. A file that is not the state of this
// destination (another directory that had the same inode) is not
// resumed.
func parseState(b []byte, id jobstate.TreeID) *restoreState {
	st := &restoreState{File: jobstate.File{Dirfd: -1}, tokens: map[string]bool{}}
	lines := strings.Split(string(b), "\n")
	lines = lines[:len(lines)-1] // the last is empty or cut short
	if len(lines) < 2 || lines[0] != stateHeader || lines[1] != id.Record() {
		return st
	}
	st.resumed = true
	for _, l := range lines[2:] {
		k, v, _ := strings.Cut(l, " ")
		switch k {
		case "token":
			if isToken(v) {
				st.tokens[v] = true
			}
		case "staging":
			if isStagingName(v) {
				st.staging = append(st.staging, v)
			}
		case "direct":
			st.direct = true
		}
	}
	return st
}

// openRestoreState opens and locks the state file of the destination d
// in the state directory dirfd (from stateDirFor, named dirPath; it is
// closed with the state, or on error) and reads what it records. A new
// file gets its header.
func openRestoreState(dirfd int, dirPath string, d *destDir) (*restoreState, error) {
	id, err := d.identify()
	if err != nil {
		sys.Close(dirfd)
		return nil, err
	}
	ls, err := jobstate.Open(dirfd, dirPath, id.FileName())
	if err != nil {
		if errors.Is(err, sys.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (its state %s is locked)", d.path, ErrRestoreRunning, path.Join(dirPath, id.FileName()))
		}
		return nil, err
	}
	f, p := ls.F, ls.Path
	fail := func(err error) (*restoreState, error) {
		_ = ls.Close(false)
		return nil, err
	}
	b, err := ls.ReadAll()
	if err != nil {
		return fail(&fs.PathError{Op: "read", Path: p, Err: err})
	}
	st := parseState(b, id)
	st.File = *ls
	if !st.resumed {
		// Empty, cut short before its first records, or left by a
		// directory that had this inode before.
		if err := f.Truncate(0); err != nil {
			return fail(err)
		}
		if err := st.record(stateHeader, id.Record(), "path "+strconv.Quote(d.path)); err != nil {
			return fail(err)
		}
	}
	return st, nil
}

// record appends lines to the state file with one write(2).
func (st *restoreState) record(lines ...string) error {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if _, err := st.F.WriteString(b.String()); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &fs.PathError{Op: "write", Path: st.Path, Err: err}
	}
	return nil
}

// lookupRestoreState returns what the state file of an unfinished restore
// into d records (nil when there is none), read without a lock: for
// [Verify]. The default state directories are searched as a restore
// would (and one it cannot use is no error); dir, when given, must be
// readable.
func lookupRestoreState(dir string, d *destDir) (*restoreState, error) {
	dirfd, dirPath, err := jobstate.DirFor(dir, "restore", false)
	if err != nil {
		if dir == "" || errors.Is(err, sys.ENOENT) {
			return nil, nil
		}
		return nil, err
	}
	defer sys.Close(dirfd)
	id, err := d.identify()
	if err != nil {
		return nil, err
	}
	p := path.Join(dirPath, id.FileName())
	fd, err := sys.Openat(dirfd, id.FileName(), sys.O_RDONLY|sys.O_NOFOLLOW|sys.O_CLOEXEC, 0)
	if errors.Is(err, sys.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	b, err := jobstate.ReadAll(f)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: p, Err: err}
	}
	st := parseState(b, id)
	if !st.resumed {
		return nil, nil
	}
	st.Path = p
	return st, nil
}

// hasStaging reports whether the state records the staging directory
// name (directly in the destination). st may be nil.
func (st *restoreState) hasStaging(name string) bool {
	if st == nil {
		return false
	}
	for _, s := range st.staging {
		if s == name {
			return true
		}
	}
	return false
}

// hasTmp reports whether name is a temporary name of a restore the state
// records. st may be nil.
func (st *restoreState) hasTmp(name string) bool {
	return st != nil && isRestoreTmp(name, st.tokens)
}

// randHex returns n random bytes in hex.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// newToken returns the token of a restore's temporary names.
func newToken() string { return randHex(8) }

// isToken reports whether s has the form of a token.
func isToken(s string) bool {
	if len(s) != 16 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// isRestoreTmp reports whether name is a temporary name made by a
// restore whose token is in tokens: tmpPrefix, the token, ".", 16 hex
// digits.
func isRestoreTmp(name string, tokens map[string]bool) bool {
	rest, ok := strings.CutPrefix(name, tmpPrefix)
	if !ok {
		return false
	}
	tok, suffix, ok := strings.Cut(rest, ".")
	return ok && tokens[tok] && isToken(suffix)
}
