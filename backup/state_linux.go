//go:build linux

package backup

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
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

// defaultStateDirs returns the directories where the restores (job
// "restore") or shifts ("shift") of the caller keep their state, in order
// of preference: /var/lib/nscap/JOB for root; otherwise
// $XDG_STATE_HOME/nscap/JOB, then ~/.local/state/nscap/JOB ($HOME, then
// the home directory of the passwd entry), then /var/tmp/nscap-JOB-UID
// for a user without a home it can write.
func defaultStateDirs(job string) []string {
	euid := os.Geteuid()
	if euid == 0 {
		return []string{"/var/lib/nscap/" + job}
	}
	var dirs []string
	add := func(dir string) {
		for _, d := range dirs {
			if d == dir {
				return
			}
		}
		dirs = append(dirs, dir)
	}
	if x := os.Getenv("XDG_STATE_HOME"); path.IsAbs(x) {
		add(path.Join(x, "nscap", job))
	}
	if h := os.Getenv("HOME"); path.IsAbs(h) {
		add(path.Join(h, ".local/state/nscap", job))
	}
	if u, err := user.LookupId(strconv.Itoa(euid)); err == nil && path.IsAbs(u.HomeDir) {
		add(path.Join(u.HomeDir, ".local/state/nscap", job))
	}
	add("/var/tmp/nscap-" + job + "-" + strconv.Itoa(euid))
	return dirs
}

// openStateDir opens dir (O_PATH), creating it (mode 0700) when create is
// set, and checks by its descriptor that no one but the caller can write
// in it: owned by the caller's effective uid, writable by no one else.
func openStateDir(dir string, create bool) (int, error) {
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return -1, err
		}
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, &fs.PathError{Op: "fstat", Path: dir, Err: err}
	}
	if euid := unix.Geteuid(); st.Uid != uint32(euid) {
		unix.Close(fd)
		return -1, fmt.Errorf("state directory %s: owned by uid %d, not by the caller (uid %d)", dir, st.Uid, euid)
	}
	if st.Mode&0o022 != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("state directory %s: mode %04o lets others than its owner write in it", dir, st.Mode&0o7777)
	}
	return fd, nil
}

// stateDirFor opens the state directory dir or, when dir is empty, the
// first usable one of defaultStateDirs. It returns the descriptor and
// the directory's path.
func stateDirFor(dir, job string, create bool) (int, string, error) {
	if dir != "" {
		fd, err := openStateDir(dir, create)
		return fd, dir, err
	}
	var errs []error
	for _, dir := range defaultStateDirs(job) {
		fd, err := openStateDir(dir, create)
		if err == nil {
			return fd, dir, nil
		}
		errs = append(errs, err)
	}
	return -1, "", fmt.Errorf("no state directory for the %s: %w", job, errors.Join(errs...))
}

// destID identifies a destination directory: its device and inode (the
// name of its state file) and its birth time, which tells a directory
// from a later one that got the same inode number.
type destID struct {
	dev   uint64
	ino   uint64
	btime string // "-" where the filesystem has no birth time
}

// identify returns the identity of the destination (statx(2), Linux 4.11+).
func (d *destDir) identify() (destID, error) {
	var sx unix.Statx_t
	if err := unix.Statx(d.fd, "", unix.AT_EMPTY_PATH|unix.AT_STATX_SYNC_AS_STAT, unix.STATX_INO|unix.STATX_BTIME, &sx); err != nil {
		return destID{}, d.pathErr("statx", ".", err)
	}
	id := destID{dev: unix.Mkdev(sx.Dev_major, sx.Dev_minor), ino: sx.Ino, btime: "-"}
	if sx.Mask&unix.STATX_BTIME != 0 {
		id.btime = fmt.Sprintf("%d.%09d", sx.Btime.Sec, sx.Btime.Nsec)
	}
	return id, nil
}

// fileName is the name of the state file of the destination.
func (id destID) fileName() string {
	return fmt.Sprintf("%d.%d.%d", unix.Major(id.dev), unix.Minor(id.dev), id.ino)
}

// record is the "dest" record of the destination.
func (id destID) record() string {
	return fmt.Sprintf("dest %d %d %s", id.dev, id.ino, id.btime)
}

// restoreState is the state file of a restore, or what Verify read of
// one.
type restoreState struct {
	lockedState // dirfd -1 and f nil when read by Verify

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
func parseState(b []byte, id destID) *restoreState {
	st := &restoreState{lockedState: lockedState{dirfd: -1}, tokens: map[string]bool{}}
	lines := strings.Split(string(b), "\n")
	lines = lines[:len(lines)-1] // the last is empty or cut short
	if len(lines) < 2 || lines[0] != stateHeader || lines[1] != id.record() {
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
		unix.Close(dirfd)
		return nil, err
	}
	ls, err := openLockedState(dirfd, dirPath, id.fileName())
	if err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (its state %s is locked)", d.path, ErrRestoreRunning, path.Join(dirPath, id.fileName()))
		}
		return nil, err
	}
	f, p := ls.f, ls.path
	fail := func(err error) (*restoreState, error) {
		_ = ls.close(false)
		return nil, err
	}
	b, err := readAllAt(f)
	if err != nil {
		return fail(&fs.PathError{Op: "read", Path: p, Err: err})
	}
	st := parseState(b, id)
	st.lockedState = *ls
	if !st.resumed {
		// Empty, cut short before its first records, or left by a
		// directory that had this inode before.
		if err := f.Truncate(0); err != nil {
			return fail(err)
		}
		if err := st.record(stateHeader, id.record(), "path "+strconv.Quote(d.path)); err != nil {
			return fail(err)
		}
	}
	return st, nil
}

// readAllAt reads the whole of f from its start.
func readAllAt(f *os.File) ([]byte, error) {
	var b []byte
	buf := make([]byte, 4096)
	for off := int64(0); ; {
		n, err := f.ReadAt(buf, off)
		b = append(b, buf[:n]...)
		off += int64(n)
		if n < len(buf) {
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			return b, nil
		}
	}
}

// record appends lines to the state file with one write(2).
func (st *restoreState) record(lines ...string) error {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	if _, err := st.f.WriteString(b.String()); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return &fs.PathError{Op: "write", Path: st.path, Err: err}
	}
	return nil
}

// lockedState is a file of a state directory, open and locked (flock)
// by this process: a restore's state, a shift's journal.
type lockedState struct {
	dirfd int      // the state directory (O_PATH)
	f     *os.File // the file, locked
	name  string   // its name in the state directory
	path  string   // for messages
}

// openLockedState opens (creating it, mode 0600) and locks the file name
// of the state directory dirfd (named dirPath). It takes dirfd: closed
// with the result, or on error. Locked by another process: an error
// matching unix.EWOULDBLOCK.
func openLockedState(dirfd int, dirPath, name string) (*lockedState, error) {
	p := path.Join(dirPath, name)
	for attempt := 0; ; attempt++ {
		fd, err := unix.Openat(dirfd, name, unix.O_RDWR|unix.O_CREAT|unix.O_APPEND|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			unix.Close(dirfd)
			return nil, &fs.PathError{Op: "open", Path: p, Err: err}
		}
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			unix.Close(fd)
			unix.Close(dirfd)
			return nil, &fs.PathError{Op: "flock", Path: p, Err: err}
		}
		// A run that just ended removed the file after this one opened
		// it: its lock is on a file no one will look for again.
		var got, cur unix.Stat_t
		if unix.Fstat(fd, &got) == nil && unix.Fstatat(dirfd, name, &cur, unix.AT_SYMLINK_NOFOLLOW) == nil &&
			got.Dev == cur.Dev && got.Ino == cur.Ino {
			return &lockedState{dirfd: dirfd, f: os.NewFile(uintptr(fd), p), name: name, path: p}, nil
		}
		unix.Close(fd)
		if attempt == 100 {
			unix.Close(dirfd)
			return nil, fmt.Errorf("lock %s: removed each time it was opened", p)
		}
	}
}

// close releases the file; remove removes it first (the run is over and
// left nothing that the file must tell the next one).
func (l *lockedState) close(remove bool) error {
	var err error
	if remove {
		if uerr := unix.Unlinkat(l.dirfd, l.name, 0); uerr != nil && !errors.Is(uerr, unix.ENOENT) {
			err = &fs.PathError{Op: "unlink", Path: l.path, Err: uerr}
		}
	}
	l.f.Close()
	unix.Close(l.dirfd)
	return err
}

// lookupRestoreState returns what the state file of an unfinished restore
// into d records (nil when there is none), read without a lock: for
// [Verify]. The default state directories are searched as a restore
// would (and one it cannot use is no error); dir, when given, must be
// readable.
func lookupRestoreState(dir string, d *destDir) (*restoreState, error) {
	dirfd, dirPath, err := stateDirFor(dir, "restore", false)
	if err != nil {
		if dir == "" || errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, err
	}
	defer unix.Close(dirfd)
	id, err := d.identify()
	if err != nil {
		return nil, err
	}
	p := path.Join(dirPath, id.fileName())
	fd, err := unix.Openat(dirfd, id.fileName(), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	b, err := readAllAt(f)
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: p, Err: err}
	}
	st := parseState(b, id)
	if !st.resumed {
		return nil, nil
	}
	st.path = p
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
