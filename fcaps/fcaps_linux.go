package fcaps

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"sync"
	"syscall"

	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/xattrfmt"
)

// AttrName is the name of the extended attribute holding file capabilities.
const AttrName = xattrfmt.CapsName // "security.capability", XATTR_NAME_CAPS

// target is the file an operation acts on: either an fd that the f*xattr
// calls accept, or a path (the /proc/self/fd magic link of an O_PATH fd)
// for the path calls.
type target struct {
	fd   int    // >= 0: use f*xattr
	path string // else: use *xattr on this path, following it
}

func (t target) get(buf []byte) (int, error) {
	if t.fd >= 0 {
		return sys.Fgetxattr(t.fd, AttrName, buf)
	}
	return sys.Getxattr(t.path, AttrName, buf, true)
}

func (t target) getAll() ([]byte, error) {
	if t.fd >= 0 {
		return sys.FgetxattrAll(t.fd, AttrName)
	}
	return sys.GetxattrAll(t.path, AttrName, true)
}

func (t target) set(b []byte) error {
	if t.fd >= 0 {
		return sys.Fsetxattr(t.fd, AttrName, b, 0)
	}
	return sys.Setxattr(t.path, AttrName, b, 0, true)
}

func (t target) remove() error {
	if t.fd >= 0 {
		return sys.Fremovexattr(t.fd, AttrName)
	}
	return sys.Removexattr(t.path, AttrName, true)
}

func (t target) list() ([]string, error) {
	if t.fd >= 0 {
		return sys.Flistxattr(t.fd)
	}
	return sys.Listxattr(t.path, true)
}

// read returns the value as getxattr(2) gives it, or an error explaining
// the errno (op and path name the operation for the *fs.PathError).
func (t target) read(op, path string) ([]byte, error) {
	var buf [64]byte // a converted value is at most 24 bytes (XATTR_CAPS_SZ)
	n, err := t.get(buf[:])
	if err == nil {
		return slices.Clone(buf[:n]), nil
	}
	if errors.Is(err, syscall.ERANGE) {
		var b []byte
		if b, err = t.getAll(); err == nil {
			return b, nil
		}
	}
	return nil, readError(op, path, err, t.list)
}

// readError turns the errno of a security.capability read into an
// *fs.PathError whose Err explains it and matches the sentinels. list is
// consulted on EINVAL: a listed value the kernel refuses is ErrUnreadable.
func readError(op, path string, err error, list func() ([]string, error)) error {
	return explain(op, path, err, func(errno syscall.Errno) *Error {
		switch errno {
		case sys.ENODATA:
			return &Error{Kind: ErrNoCaps, Reason: "no capabilities"}
		case sys.ENOTSUP:
			return &Error{Kind: ErrNotSupported, Reason: notSupportedReason}
		case sys.EOVERFLOW:
			return &Error{Kind: ErrNotVisible, Reason: "the capability belongs to another user namespace: its rootid is not mapped in the caller's user namespace"}
		case sys.EINVAL:
			names, lerr := list()
			if lerr != nil || !slices.Contains(names, AttrName) {
				return nil
			}
			return &Error{Kind: ErrUnreadable, Reason: "security.capability is present but the kernel refuses to return it (empty value, revision 1, unknown flags or wrong size)"}
		}
		return nil
	})
}

// describe names a file type for ErrNotRegular messages.
func describe(mode fs.FileMode) string {
	switch {
	case mode&fs.ModeSymlink != 0:
		return "a symbolic link"
	case mode&fs.ModeDir != 0:
		return "a directory"
	case mode&fs.ModeCharDevice != 0:
		return "a character device"
	case mode&fs.ModeDevice != 0:
		return "a block device"
	case mode&fs.ModeNamedPipe != 0:
		return "a fifo"
	case mode&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

func notRegular(op, path string, mode fs.FileMode) error {
	return &fs.PathError{Op: op, Path: path, Err: &Error{
		Kind:   ErrNotRegular,
		Reason: "not a regular file: it is " + describe(mode) + " (capabilities act only on regular files)",
	}}
}

var procFd = sync.OnceValue(func() bool {
	_, err := os.Lstat("/proc/self/fd")
	return err == nil
})

// withRegular runs fn on the regular file at path, never following a final
// symlink and without a window in which the path could be swapped:
//
//  1. open(path, O_PATH|O_NOFOLLOW): a symlink yields the link itself, and
//     nothing is opened for I/O, so a device or fifo sees no open(2);
//  2. fstat the descriptor and refuse anything that is not a regular file
//     with ErrNotRegular;
//  3. act through /proc/self/fd/N (see [File.do]).
//
// Symlinks in the directories of path are followed: withRegular serves
// the readers ([Get]), which change nothing; writers use a [Lookup].
func withRegular(op, path string, fn func(t target) error) error {
	fd, err := sys.OpenPath(path)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	st, err := sys.Fstat(fd)
	if err != nil {
		sys.Close(fd)
		return &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	f := &File{name: path, fd: fd, st: st, reopen: func() (int, error) {
		rfd, err := sys.Openat(sys.AtFdcwd, path, sys.OReadNoFollow, 0)
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: path, Err: err}
		}
		return rfd, nil
	}}
	defer func() { _ = f.Close() }()
	return f.do(op, fn)
}

// withFile runs fn on f's descriptor (see [onFd]). regular makes a
// non-regular file an ErrNotRegular error.
func withFile(op string, f *os.File, regular bool, fn func(t target) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return &fs.PathError{Op: op, Path: f.Name(), Err: err}
	}
	var ferr error
	cerr := rc.Control(func(fdp uintptr) {
		fd := int(fdp)
		if regular {
			st, err := sys.Fstat(fd)
			if err != nil {
				ferr = &fs.PathError{Op: "fstat", Path: f.Name(), Err: err}
				return
			}
			if m := sys.ModeType(st.Mode); m != 0 {
				ferr = notRegular(op, f.Name(), m)
				return
			}
		}
		ferr = onFd(fd, fn)
	})
	if cerr != nil {
		return &fs.PathError{Op: op, Path: f.Name(), Err: cerr}
	}
	return ferr
}

// Get returns the capabilities of the regular file at path, as the
// caller's user namespace sees them (getxattr(2) of security.capability
// converts a revision-3 value: see [xattrfmt.FileCaps]). A final symlink is
// never followed: it, and every other non-regular file, gives an
// [*fs.PathError] matching [ErrNotRegular]. Symlinks in the directories
// of path are followed, as getcap follows them: a read changes nothing
// (use [Lookup.Open] and [File.Get] to read what [Set] would write).
// Other errors match
// [ErrNoCaps] (none), [ErrNotVisible] (EOVERFLOW: the rootid is not mapped
// here), [ErrUnreadable] (EINVAL while listxattr(2) lists the value) or
// [ErrNotSupported], and keep the errno.
func Get(path string) (xattrfmt.FileCaps, error) {
	b, err := GetRaw(path)
	if err != nil {
		return xattrfmt.FileCaps{}, err
	}
	return decode(path, b)
}

// GetRaw is [Get] without decoding: it returns the bytes getxattr(2) gives
// (20 bytes for revision 2, 24 for revision 3, converted for the caller's
// user namespace), for callers that store or compare values verbatim
// (backup, audit). The kernel returns no bytes at all for a value it
// cannot convert (EINVAL, [ErrUnreadable]): no system call can read those
// from user space.
func GetRaw(path string) ([]byte, error) {
	var b []byte
	err := withRegular("getxattr", path, func(t target) (err error) {
		b, err = t.read("getxattr", path)
		return err
	})
	return b, err
}

// FGet is [Get] on an open file (fgetxattr(2)). It works on any type of
// file, including directories and symlinks opened with O_PATH|O_NOFOLLOW.
func FGet(f *os.File) (xattrfmt.FileCaps, error) {
	b, err := FGetRaw(f)
	if err != nil {
		return xattrfmt.FileCaps{}, err
	}
	return decode(f.Name(), b)
}

// FGetRaw is [GetRaw] on an open file.
func FGetRaw(f *os.File) ([]byte, error) {
	var b []byte
	err := withFile("fgetxattr", f, false, func(t target) (err error) {
		b, err = t.read("fgetxattr", f.Name())
		return err
	})
	return b, err
}

func decode(path string, b []byte) (xattrfmt.FileCaps, error) {
	c, err := xattrfmt.Decode(b)
	if err != nil {
		return xattrfmt.FileCaps{}, &fs.PathError{Op: "decode", Path: path, Err: &Error{
			Kind:   ErrUnreadable,
			Reason: "the kernel returned a security.capability value that cannot be decoded",
			Err:    err,
		}}
	}
	return c, nil
}

// Set writes c as the security.capability of the regular file at path
// (fsetxattr(2) semantics, through the descriptor of the file itself).
// The path is opened by the zero [Lookup]: no symlink is followed in any
// of its components, and one met is refused with [ErrSymlink] (a final
// one with [ErrNotRegular]); use [Lookup.Open] and a [Setter] to resolve
// a container's path in its root. c is encoded with
// [xattrfmt.Encode]; revision 3 requires a rootid mapped in the caller's
// user namespace, else the error matches [ErrRootIDNotMapped] and EINVAL.
// Writing needs CAP_SETFCAP in a user namespace that maps the file's owner
// and group (EPERM otherwise). Inside a user namespace the kernel turns a
// revision-2 value into revision 3 with the namespace's root as rootid.
// The kernel drops the value on chown(2) and on writes: set it last.
func Set(path string, c xattrfmt.FileCaps) error {
	b, err := xattrfmt.Encode(c)
	if err != nil {
		return &fs.PathError{Op: "encode", Path: path, Err: err}
	}
	f, err := Lookup{}.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	return f.set(c, b)
}

// FSet is [Set] on an open file (fsetxattr(2)); f must be a regular file
// ([ErrNotRegular] otherwise). It may be open read-only.
func FSet(f *os.File, c xattrfmt.FileCaps) error {
	b, err := xattrfmt.Encode(c)
	if err != nil {
		return &fs.PathError{Op: "encode", Path: f.Name(), Err: err}
	}
	return withFile("fsetxattr", f, true, func(t target) error {
		return t.write("fsetxattr", f.Name(), b)
	})
}

// Remove removes the capabilities of the regular file at path
// (removexattr(2) through the file's descriptor, the path opened as [Set]
// opens it: no symlink followed). A file without capabilities gives an
// error matching [ErrNoCaps] and ENODATA, as `setcap -r` fails on one
// ("has no capability to remove", exit status 1).
func Remove(path string) error {
	f, err := Lookup{}.Open(path)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }()
	return f.remove()
}

// FRemove is [Remove] on an open file (fremovexattr(2)). It works on any
// type of file, so that a stray value on a directory can be cleaned up.
func FRemove(f *os.File) error {
	return withFile("fremovexattr", f, false, func(t target) error {
		return t.erase("fremovexattr", f.Name())
	})
}
