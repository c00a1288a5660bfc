//go:build linux

// Package jobstate keeps the state of a job that must survive a kill
// (a restore's record of its temporary names, a shift's journal) outside
// the tree the job works on, in a directory only its user can write.
package jobstate

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"path"
	"strconv"

	"github.com/nscap/nscap/internal/sys"
)

// defaultDirs returns the directories where the restores (job
// "restore") or shifts ("shift") of the caller keep their state, in order
// of preference: /var/lib/nscap/JOB for root; otherwise
// $XDG_STATE_HOME/nscap/JOB, then ~/.local/state/nscap/JOB ($HOME, then
// the home directory of the passwd entry), then /var/tmp/nscap-JOB-UID
// for a user without a home it can write.
func defaultDirs(job string) []string {
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

// openDir opens dir (O_PATH), creating it (mode 0700) when create is
// set, and checks by its descriptor that no one but the caller can write
// in it: owned by the caller's effective uid, writable by no one else.
func openDir(dir string, create bool) (int, error) {
	if create {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return -1, err
		}
	}
	fd, err := sys.Open(dir, sys.O_PATH|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	st, err := sys.Fstat(fd)
	if err != nil {
		sys.Close(fd)
		return -1, &fs.PathError{Op: "fstat", Path: dir, Err: err}
	}
	if euid := sys.Geteuid(); st.Uid != uint32(euid) {
		sys.Close(fd)
		return -1, fmt.Errorf("state directory %s: owned by uid %d, not by the caller (uid %d)", dir, st.Uid, euid)
	}
	if st.Mode&0o022 != 0 {
		sys.Close(fd)
		return -1, fmt.Errorf("state directory %s: mode %04o lets others than its owner write in it", dir, st.Mode&0o7777)
	}
	return fd, nil
}

// DirFor opens the state directory dir or, when dir is empty, the
// first usable one of the defaults (see defaultDirs). It returns the descriptor and
// the directory's path.
func DirFor(dir, job string, create bool) (int, string, error) {
	if dir != "" {
		fd, err := openDir(dir, create)
		return fd, dir, err
	}
	var errs []error
	for _, dir := range defaultDirs(job) {
		fd, err := openDir(dir, create)
		if err == nil {
			return fd, dir, nil
		}
		errs = append(errs, err)
	}
	return -1, "", fmt.Errorf("no state directory for the %s: %w", job, errors.Join(errs...))
}

// ReadAll reads the whole file from its start.
func (l *File) ReadAll() ([]byte, error) { return ReadAll(l.F) }

// ReadAll reads the whole of f from its start (a state file read without
// its lock, too).
func ReadAll(f *os.File) ([]byte, error) {
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

// File is a file of a state directory, open and locked (flock) by this
// process: a restore's state, a shift's journal.
type File struct {
	Dirfd int      // the state directory (O_PATH)
	F     *os.File // the file, locked
	Name  string   // its name in the state directory
	Path  string   // for messages
}

// Open opens (creating it, mode 0600) and locks the file name
// of the state directory dirfd (named dirPath). It takes dirfd: closed
// with the result, or on error. Locked by another process: an error
// matching sys.EWOULDBLOCK.
func Open(dirfd int, dirPath, name string) (*File, error) {
	p := path.Join(dirPath, name)
	for attempt := 0; ; attempt++ {
		fd, err := sys.Openat(dirfd, name, sys.O_RDWR|sys.O_CREAT|sys.O_APPEND|sys.O_NOFOLLOW|sys.O_CLOEXEC, 0o600)
		if err != nil {
			sys.Close(dirfd)
			return nil, &fs.PathError{Op: "open", Path: p, Err: err}
		}
		if err := sys.Flock(fd, sys.LOCK_EX|sys.LOCK_NB); err != nil {
			sys.Close(fd)
			sys.Close(dirfd)
			return nil, &fs.PathError{Op: "flock", Path: p, Err: err}
		}
		// A run that just ended removed the file after this one opened
		// it: its lock is on a file no one will look for again.
		got, gerr := sys.Fstat(fd)
		cur, cerr := sys.FstatatNoFollow(dirfd, name)
		if gerr == nil && cerr == nil && got.Dev == cur.Dev && got.Ino == cur.Ino {
			return &File{Dirfd: dirfd, F: os.NewFile(uintptr(fd), p), Name: name, Path: p}, nil
		}
		sys.Close(fd)
		if attempt == 100 {
			sys.Close(dirfd)
			return nil, fmt.Errorf("lock %s: removed each time it was opened", p)
		}
	}
}

// Close releases the file; remove removes it first (the run is over and
// left nothing that the file must tell the next one).
func (l *File) Close(remove bool) error {
	var err error
	if remove {
		if uerr := sys.Unlinkat(l.Dirfd, l.Name, 0); uerr != nil && !errors.Is(uerr, sys.ENOENT) {
			err = &fs.PathError{Op: "unlink", Path: l.Path, Err: uerr}
		}
	}
	l.F.Close()
	sys.Close(l.Dirfd)
	return err
}

// TreeID identifies the directory a job works on: its device and inode
// (the name of its state file) and its birth time, which tells a
// directory from a later one that got the same inode number.
type TreeID struct {
	Dev   uint64
	Ino   uint64
	Btime string // "-" where the filesystem has no birth time
}

// Identify returns the identity of the directory fd (statx(2), Linux
// 4.11+).
func Identify(fd int) (TreeID, error) {
	var sx sys.Statx_t
	if err := sys.Statx(fd, "", sys.AT_EMPTY_PATH|sys.AT_STATX_SYNC_AS_STAT, sys.STATX_INO|sys.STATX_BTIME, &sx); err != nil {
		return TreeID{}, err
	}
	id := TreeID{Dev: sys.Mkdev(sx.Dev_major, sx.Dev_minor), Ino: sx.Ino, Btime: "-"}
	if sx.Mask&sys.STATX_BTIME != 0 {
		id.Btime = fmt.Sprintf("%d.%09d", sx.Btime.Sec, sx.Btime.Nsec)
	}
	return id, nil
}

// FileName is the name of the state file of the tree.
func (id TreeID) FileName() string {
	return fmt.Sprintf("%d.%d.%d", sys.Major(id.Dev), sys.Minor(id.Dev), id.Ino)
}

// Record is the "dest" record of the tree.
func (id TreeID) Record() string {
	return fmt.Sprintf("dest %d %d %s", id.Dev, id.Ino, id.Btime)
}
