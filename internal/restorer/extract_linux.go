//go:build linux

package restorer

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/nscap/nscap/internal/sys"
)

// resolveBeneath is how every path below the destination is resolved: it
// may not leave the destination, may not cross any symlink (so an entry
// extracted earlier can never redirect a later one), nor a /proc magic
// link. openat2(2), Linux 5.6+.
const resolveBeneath = sys.RESOLVE_BENEATH | sys.RESOLVE_NO_SYMLINKS | sys.RESOLVE_NO_MAGICLINKS

// tmpPrefix starts the names of the temporary entries the restorer makes
// next to their final name before renaming them into place: tmpPrefix,
// the token of the restore (recorded in its state, see restoreState), a
// dot and 16 random hex digits.
const tmpPrefix = ".nscap-tmp."

// stagingPrefix starts the name of the hidden directory, directly in the
// destination, that a restore into an empty destination fills before
// renaming its top-level entries into place (see [Restore]).
const stagingPrefix = ".nscap-staging."

// ErrSymlinkInPath is a member whose path crosses a symlink under the
// destination: extracting it would write wherever the link points.
var ErrSymlinkInPath = errors.New("backup: path crosses a symlink")

// destDir is the destination of an extraction, held open: every operation
// is relative to its descriptor.
type destDir struct {
	fd   int    // O_PATH|O_DIRECTORY descriptor of the destination
	path string // for messages only
	// emptyPath is set when linkat(AT_EMPTY_PATH) works (it needs
	// CAP_DAC_READ_SEARCH); otherwise O_TMPFILE inodes are linked through
	// /proc/self/fd.
	emptyPath bool
	// noTmpfile is set once O_TMPFILE is found unsupported.
	noTmpfile bool
	// token is carried by the temporary names of the restore (see
	// tmpName).
	token string
}

// openDest opens dir, a directory; create makes it when it does not
// exist (see [OpenOrMakeDest]).
func openDest(dir string, create bool) (*destDir, error) {
	open := func(dir string) (int, error) {
		return sys.Open(dir, sys.O_PATH|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
	}
	if create {
		open = OpenOrMakeDest
	}
	fd, err := open(dir)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	return &destDir{fd: fd, path: dir, emptyPath: sys.Geteuid() == 0}, nil
}

// OpenOrMakeDest opens the directory dir (O_PATH), creating it first when
// it does not exist, as restic and umoci do; its parent must exist. A
// made directory is empty, so the restore applies the owner, mode and
// times of the archive's root entry to it at the end.
func OpenOrMakeDest(dir string) (int, error) {
	fd, err := sys.Open(dir, sys.O_PATH|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
	if !errors.Is(err, sys.ENOENT) {
		return fd, err
	}
	if err := sys.Mkdir(dir, 0o755); err != nil && !errors.Is(err, sys.EEXIST) {
		if errors.Is(err, sys.ENOENT) {
			return -1, fmt.Errorf("its parent directory does not exist: %w", err)
		}
		return -1, err
	}
	return sys.Open(dir, sys.O_PATH|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
}

func (d *destDir) Close() error { return sys.Close(d.fd) }

// display returns the path of rel for messages.
func (d *destDir) display(rel string) string {
	if rel == "." {
		return d.path
	}
	return strings.TrimSuffix(d.path, "/") + "/" + rel
}

func (d *destDir) pathErr(op, rel string, err error) error {
	if errors.Is(err, sys.ELOOP) || errors.Is(err, sys.EXDEV) {
		err = fmt.Errorf("%w (%v)", ErrSymlinkInPath, err)
	}
	return &fs.PathError{Op: op, Path: d.display(rel), Err: err}
}

// openat2 opens rel beneath the destination with resolveBeneath
// ([sys.Openat2] retries, 64 times at most, the EAGAIN that openat2
// returns when a rename raced the lookup).
func openat2(dirfd int, rel string, flags int) (int, error) {
	return sys.Openat2(dirfd, rel, flags|sys.O_CLOEXEC, resolveBeneath)
}

// openDir returns an O_PATH descriptor of the directory rel, creating the
// missing directories on the way with mode 0755 (GNU tar creates missing
// parents too). A component that is a symlink or not a directory is an
// error.
func (d *destDir) openDir(rel string, create bool) (int, error) {
	if rel == "." {
		return sys.Dup(d.fd)
	}
	fd, err := openat2(d.fd, rel, sys.O_PATH|sys.O_DIRECTORY)
	if err == nil || !create || !errors.Is(err, sys.ENOENT) {
		if err != nil {
			return -1, d.pathErr("open", rel, err)
		}
		return fd, nil
	}
	cur, err := sys.Dup(d.fd)
	if err != nil {
		return -1, err
	}
	done := ""
	for _, c := range strings.Split(rel, "/") {
		done = path.Join(done, c)
		next, err := openat2(cur, c, sys.O_PATH|sys.O_DIRECTORY)
		if errors.Is(err, sys.ENOENT) {
			if err = sys.Mkdirat(cur, c, 0o755); err == nil || errors.Is(err, sys.EEXIST) {
				next, err = openat2(cur, c, sys.O_PATH|sys.O_DIRECTORY)
			}
		}
		sys.Close(cur)
		if err != nil {
			return -1, d.pathErr("mkdir", done, err)
		}
		cur = next
	}
	return cur, nil
}

// isEmpty reports whether the destination holds no entry at all.
func (d *destDir) isEmpty() (bool, error) {
	fd, err := sys.Openat(d.fd, ".", sys.O_RDONLY|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
	if err != nil {
		return false, d.pathErr("open", ".", err)
	}
	defer sys.Close(fd)
	buf := make([]byte, 4096)
	for {
		n, err := sys.Getdents(fd, buf)
		if err != nil {
			return false, d.pathErr("readdir", ".", err)
		}
		if n == 0 {
			return true, nil
		}
		if _, _, names := sys.ParseDirent(buf[:n], -1, nil); len(names) > 0 { // ParseDirent skips "." and ".."
			return false, nil
		}
	}
}

// parentCache keeps the descriptor of the last parent directory used, so
// that the members of one directory resolve it once.
type parentCache struct {
	d    *destDir
	name string
	fd   int
}

func (c *parentCache) get(dir string) (int, error) {
	if c.fd > 0 && c.name == dir {
		return c.fd, nil
	}
	c.drop()
	fd, err := c.d.openDir(dir, true)
	if err != nil {
		return -1, err
	}
	c.name, c.fd = dir, fd
	return fd, nil
}

func (c *parentCache) drop() {
	if c.fd > 0 {
		sys.Close(c.fd)
	}
	c.fd, c.name = 0, ""
}

// tmpName returns a fresh temporary name carrying the token of the
// restore (a token of its own where the restore has none).
func (d *destDir) tmpName() string {
	tok := d.token
	if tok == "" {
		tok = newToken()
	}
	return tmpPrefix + tok + "." + randHex(8)
}

// createTmpfile returns a writable unnamed inode in dirfd (O_TMPFILE, Linux
// 3.11+), or, where the filesystem lacks O_TMPFILE, a file under a
// temporary name, returned in tmp.
func (d *destDir) createTmpfile(dirfd int) (f *os.File, tmp string, err error) {
	if !d.noTmpfile {
		fd, err := sys.Openat(dirfd, ".", sys.O_TMPFILE|sys.O_WRONLY|sys.O_CLOEXEC, 0o600)
		if err == nil {
			return os.NewFile(uintptr(fd), "tmpfile"), "", nil
		}
		if !errors.Is(err, sys.EOPNOTSUPP) && !errors.Is(err, sys.EISDIR) && !errors.Is(err, sys.EINVAL) {
			return nil, "", err
		}
		d.noTmpfile = true
	}
	tmp = d.tmpName()
	fd, err := sys.Openat(dirfd, tmp, sys.O_CREAT|sys.O_EXCL|sys.O_NOFOLLOW|sys.O_WRONLY|sys.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, "", err
	}
	return os.NewFile(uintptr(fd), tmp), tmp, nil
}

// linkTmpfile gives the unnamed inode f the name name in dirfd (linkat,
// failing with EEXIST when the name is taken).
func (d *destDir) linkTmpfile(f *os.File, dirfd int, name string) error {
	if d.emptyPath {
		err := sys.Linkat(int(f.Fd()), "", dirfd, name, sys.AT_EMPTY_PATH)
		if !errors.Is(err, sys.ENOENT) && !errors.Is(err, sys.EPERM) {
			return err
		}
		// ENOENT: no CAP_DAC_READ_SEARCH after all.
		d.emptyPath = false
	}
	return sys.Linkat(sys.AT_FDCWD, sys.ProcFdPath(int(f.Fd())), dirfd, name, sys.AT_SYMLINK_FOLLOW)
}

// place moves the finished entry tmp (in dirfd) to name, replacing what is
// there: a directory in the way is removed when empty.
func place(dirfd int, tmp, name string) error {
	err := sys.Renameat(dirfd, tmp, dirfd, name)
	if errors.Is(err, sys.EISDIR) || errors.Is(err, sys.ENOTEMPTY) || errors.Is(err, sys.EEXIST) {
		if rerr := sys.Unlinkat(dirfd, name, sys.AT_REMOVEDIR); rerr == nil {
			err = sys.Renameat(dirfd, tmp, dirfd, name)
		}
	}
	if err != nil {
		_ = sys.Unlinkat(dirfd, tmp, 0)
		return err
	}
	// rename(2) does nothing when both names are links to one inode (a
	// hardlink restored over itself): the temporary name must still go.
	_ = sys.Unlinkat(dirfd, tmp, 0)
	return nil
}

// timespecs converts the archive times for utimensat: the access time
// defaults to the modification time.
func timespecs(atime, mtime time.Time) [2]sys.Timespec {
	if atime.IsZero() {
		atime = mtime
	}
	return [2]sys.Timespec{sys.NsecToTimespec(atime.UnixNano()), sys.NsecToTimespec(mtime.UnixNano())}
}

// TestHookSweep is called, when set (by tests only), before each
// temporary name is removed by sweepTmp.
var TestHookSweep func(name string)

// sweepTmp removes, anywhere under the destination, the temporary names
// that carry one of tokens: those of the restores the state records,
// killed before they could remove them. Nothing else is removed, a name
// of that form that is a directory neither (a restore never makes one).
// It never follows symlinks.
//
// DEST may hold anything its container planted, a chain of directories
// deeper than the descriptors a process may open among others: the walk
// holds one descriptor at a time, opening each directory by its path
// from the destination, as the restore resolves its members (openat2
// beneath d). A directory whose path is PATH_MAX long or more is not
// entered: the restore could not have resolved it, so nothing of it is
// there. One that cannot be opened (replaced meanwhile, or not
// searchable) is skipped too.
func (d *destDir) sweepTmp(tokens map[string]bool) error {
	if len(tokens) == 0 {
		return nil
	}
	stack := []string{"."}
	for len(stack) > 0 {
		rel := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		fd, err := openat2(d.fd, rel, sys.O_RDONLY|sys.O_DIRECTORY|sys.O_NOFOLLOW)
		if err != nil {
			if errors.Is(err, sys.ENOENT) || errors.Is(err, sys.ENOTDIR) || errors.Is(err, sys.ELOOP) || errors.Is(err, sys.EXDEV) ||
				errors.Is(err, sys.ENAMETOOLONG) || errors.Is(err, sys.EACCES) || errors.Is(err, sys.EPERM) {
				continue
			}
			return d.pathErr("open", rel, err)
		}
		dir := os.NewFile(uintptr(fd), rel)
		var ours, subdirs []string
		for {
			ents, err := dir.ReadDir(1024)
			for _, e := range ents {
				switch {
				case e.IsDir():
					if sub := path.Join(rel, e.Name()); len(sub) < sys.PathMax {
						subdirs = append(subdirs, sub)
					}
				case isRestoreTmp(e.Name(), tokens):
					ours = append(ours, e.Name())
				}
			}
			if errors.Is(err, io.EOF) || len(ents) == 0 {
				break
			}
			if err != nil {
				dir.Close()
				return d.pathErr("readdir", rel, err)
			}
		}
		for _, name := range ours {
			if TestHookSweep != nil {
				TestHookSweep(name)
			}
			// EISDIR: a directory put there meanwhile, not ours.
			if err := sys.Unlinkat(fd, name, 0); err != nil && !errors.Is(err, sys.ENOENT) && !errors.Is(err, sys.EISDIR) {
				dir.Close()
				return d.pathErr("unlink", path.Join(rel, name), err)
			}
		}
		dir.Close()
		for i := len(subdirs) - 1; i >= 0; i-- {
			stack = append(stack, subdirs[i])
		}
	}
	return nil
}

// stagingName returns a fresh name for a staging directory.
func stagingName() string {
	return stagingPrefix + randHex(8)
}

// isStagingName reports whether name (of an entry directly in the
// destination) is one a restore gives its staging directory.
func isStagingName(name string) bool {
	if !strings.HasPrefix(name, stagingPrefix) || len(name) != len(stagingPrefix)+16 {
		return false
	}
	_, err := hex.DecodeString(name[len(stagingPrefix):])
	return err == nil
}

// staging returns the directory name, directly in d, as a destination of
// its own: same descriptors and messages, paths shown as under d (what
// is in it goes there).
func (d *destDir) staging(name string) (*destDir, error) {
	fd, err := openat2(d.fd, name, sys.O_PATH|sys.O_DIRECTORY|sys.O_NOFOLLOW)
	if err != nil {
		return nil, d.pathErr("open", name, err)
	}
	return &destDir{fd: fd, path: d.path, emptyPath: d.emptyPath, noTmpfile: d.noTmpfile, token: d.token}, nil
}

// TestHookRemoveTree is called, when set (by tests only), before each
// entry removeTree removes.
var TestHookRemoveTree func(name string)

// removeTree removes the directory name (directly in d) and everything
// under it, with unlinkat(2) relative to descriptors opened beneath d
// with resolveBeneath: it never follows a symlink nor leaves d. A missing
// name is no error.
func (d *destDir) removeTree(name string) error {
	var rm func(parent int, base, rel string) error
	rm = func(parent int, base, rel string) error {
		fd, err := openat2(parent, base, sys.O_RDONLY|sys.O_DIRECTORY|sys.O_NOFOLLOW)
		if errors.Is(err, sys.EACCES) {
			// A directory of the archive with no search permission (for
			// a caller without CAP_DAC_OVERRIDE): make it ours to read.
			if pfd, perr := openat2(parent, base, sys.O_PATH|sys.O_DIRECTORY|sys.O_NOFOLLOW); perr == nil {
				_ = sys.Chmod(sys.ProcFdPath(pfd), 0o700)
				sys.Close(pfd)
				fd, err = openat2(parent, base, sys.O_RDONLY|sys.O_DIRECTORY|sys.O_NOFOLLOW)
			}
		}
		if errors.Is(err, sys.ENOENT) {
			return nil
		}
		if err != nil {
			return d.pathErr("open", rel, err)
		}
		dir := os.NewFile(uintptr(fd), rel)
		defer dir.Close()
		for {
			ents, err := dir.ReadDir(1024)
			for _, e := range ents {
				if TestHookRemoveTree != nil {
					TestHookRemoveTree(e.Name())
				}
				sub := path.Join(rel, e.Name())
				if e.IsDir() {
					if err := rm(fd, e.Name(), sub); err != nil {
						return err
					}
					continue
				}
				if err := sys.Unlinkat(fd, e.Name(), 0); err != nil && !errors.Is(err, sys.ENOENT) {
					return d.pathErr("unlink", sub, err)
				}
			}
			if errors.Is(err, io.EOF) || len(ents) == 0 {
				break
			}
			if err != nil {
				return d.pathErr("readdir", rel, err)
			}
		}
		if err := sys.Unlinkat(parent, base, sys.AT_REMOVEDIR); err != nil && !errors.Is(err, sys.ENOENT) {
			return d.pathErr("rmdir", rel, err)
		}
		return nil
	}
	return rm(d.fd, name, name)
}

// removeStaging removes the staging directories names (directly in d,
// recorded in the state of a killed restore) that are directories of the
// caller's: what that restore was filling. One that is not the caller's
// is not the one the restore made (its container could have put one
// there under a name it saw): it is left alone.
func (d *destDir) removeStaging(names []string) error {
	for _, name := range names {
		if !isStagingName(name) {
			continue
		}
		fd, err := openat2(d.fd, name, sys.O_PATH|sys.O_DIRECTORY|sys.O_NOFOLLOW)
		if err != nil {
			continue // gone, or not a directory: not ours
		}
		var st sys.Stat
		st, err = sys.Fstat(fd)
		sys.Close(fd)
		if err != nil || st.Uid != uint32(sys.Geteuid()) {
			continue
		}
		if err := d.removeTree(name); err != nil {
			return err
		}
	}
	return nil
}
