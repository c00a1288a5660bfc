package fcaps

import (
	"errors"
	"io/fs"
	"syscall"
)

// Sentinel errors, matched with [errors.Is]. The [*fs.PathError] that
// carries one also keeps the kernel's errno (errors.Is(err,
// syscall.EOVERFLOW) holds too): see [Error].
var (
	// ErrNoCaps: the file has no security.capability (ENODATA).
	ErrNoCaps = errors.New("fcaps: no capabilities")
	// ErrNotSupported: the filesystem stores no xattrs (ENOTSUP).
	ErrNotSupported = errors.New("fcaps: xattrs not supported")
	// ErrUnreadable: listxattr lists security.capability but the kernel
	// refuses to return it (EINVAL): an empty value, revision 1 or unknown
	// flags. Such a value may still act at exec (or make exec fail).
	ErrUnreadable = errors.New("fcaps: capability xattr present but unreadable")
	// ErrNotVisible: the capability's rootid is not mapped in the caller's
	// user namespace, so it belongs to another namespace (EOVERFLOW).
	ErrNotVisible = errors.New("fcaps: capability of another user namespace")
	// ErrNotRegular: the path is a symlink, directory, device, fifo or
	// socket; capabilities only act on regular files, and setcap refuses
	// the others.
	ErrNotRegular = errors.New("fcaps: not a regular file")
	// ErrSymlink: a directory component of the path is a symbolic link,
	// which a [Lookup] refuses to follow outside a [Root] (so that a
	// container's root user cannot redirect a write with a planted link).
	ErrSymlink = errors.New("fcaps: symbolic link in the path")
	// ErrOutsideRoot: the path is not in the [Root] a confined [Lookup]
	// must resolve it in.
	ErrOutsideRoot = errors.New("fcaps: path outside the root")
	// ErrRootIDNotMapped: the kernel refused a revision-3 value (EINVAL),
	// most likely because its rootid is not mapped in the caller's user
	// namespace.
	ErrRootIDNotMapped = errors.New("fcaps: rootid not mapped in the caller's user namespace")
)

// Error is the Err of the [*fs.PathError] values this package returns when
// it can say more than the bare errno. It unwraps to both Kind (one of the
// sentinels, or nil) and Errno (or 0), so errors.Is matches either, and
// errors.Is(err, fs.ErrPermission) works through the errno.
type Error struct {
	// Kind is the sentinel (ErrNoCaps, ErrNotVisible, ...) or nil.
	Kind error
	// Errno is the kernel's answer, or 0 when the refusal is ours (a
	// symlink given to Set, say).
	Errno syscall.Errno
	// Reason explains the refusal in words, e.g. "rootid 100000 is not
	// mapped in the caller's user namespace".
	Reason string
	// Err is a further cause (a decoding error), or nil.
	Err error
}

// Error returns Reason followed by the errno's text and any cause.
func (e *Error) Error() string {
	s := e.Reason
	if s == "" && e.Kind != nil {
		s = e.Kind.Error()
	}
	if e.Errno != 0 {
		if s == "" {
			s = e.Errno.Error()
		} else {
			s += " (" + e.Errno.Error() + ")"
		}
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns Kind, Errno and Err, those that are set.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 3)
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.Errno != 0 {
		errs = append(errs, e.Errno)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// notSupportedReason explains ENOTSUP, the [ErrNotSupported] of a read, a
// write or a removal.
const notSupportedReason = "the filesystem does not support extended attributes"

// explain returns err, the error of a system call on path, as the
// [*fs.PathError] of op. When err is an errno that reason explains (a
// non-nil [*Error] with Kind and Reason), its Err is that Error with the
// errno; otherwise it is the bare errno, or err itself when that is no
// errno.
func explain(op, path string, err error, reason func(errno syscall.Errno) *Error) error {
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return &fs.PathError{Op: op, Path: path, Err: err}
	}
	e := reason(errno)
	if e == nil {
		return &fs.PathError{Op: op, Path: path, Err: errno}
	}
	e.Errno = errno
	return &fs.PathError{Op: op, Path: path, Err: e}
}
