package fcaps

import (
	"errors"
	"fmt"
	"syscall"

	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/xattrfmt"
)

// SetRawFd writes raw, an encoded security.capability value (revision 2
// or 3, as [xattrfmt.Encode] makes it), verbatim to the file open as fd,
// and names the file name in errors. fd may be open in any mode, O_PATH
// included (fsetxattr(2) refuses such a descriptor with EBADF: the value
// is then written through its /proc/self/fd link), and the file may be of
// any type: the caller has opened what it means to write (a restore
// writes the values its archive holds, a directory's too).
//
// It is the one writer of security.capability: [Set], [FSet] and a
// [Setter] write through it, and a refused write gives the same
// [*fs.PathError] as [Set] (Op "setxattr", Path name), its Err explaining
// the errno: [ErrRootIDNotMapped] with EINVAL for a revision-3 value
// whose rootid is not mapped in the caller's user namespace (raw is
// decoded with [xattrfmt.Decode] to say which), EPERM without
// CAP_SETFCAP over the file's owner and group, [ErrNotSupported].
// The kernel drops the value on chown(2) and on writes: write it last.
func SetRawFd(fd int, name string, raw []byte) error {
	return onFd(fd, func(t target) error { return t.write("setxattr", name, raw) })
}

// onFd runs fn on fd. When fd is O_PATH (the f*xattr calls refuse it with
// EBADF), fn is retried on its /proc/self/fd link.
func onFd(fd int, fn func(t target) error) error {
	err := fn(target{fd: fd})
	if errors.Is(err, sys.EBADF) && procFd() {
		err = fn(target{fd: -1, path: sys.ProcFdPath(fd)})
	}
	return err
}

// write writes raw as the value of t and explains a refusal (op and path
// name the operation for the [*fs.PathError]).
func (t target) write(op, path string, raw []byte) error {
	if err := t.set(raw); err != nil {
		// A value that does not decode is explained as invalid.
		c, _ := xattrfmt.Decode(raw)
		return writeError(op, path, err, c)
	}
	return nil
}

// erase removes the value of t and explains a refusal.
func (t target) erase(op, path string) error {
	if err := t.remove(); err != nil {
		return removeError(op, path, err)
	}
	return nil
}

// writeError explains the errno of a security.capability write of c.
func writeError(op, path string, err error, c xattrfmt.FileCaps) error {
	return explain(op, path, err, func(errno syscall.Errno) *Error {
		switch errno {
		case sys.EINVAL:
			if c.Revision == xattrfmt.Revision3 {
				return &Error{Kind: ErrRootIDNotMapped, Reason: fmt.Sprintf("rootid %d is not mapped in the caller's user namespace (or the value is invalid)", c.RootID)}
			}
			return &Error{Reason: "the kernel refused the value as invalid"}
		case sys.EPERM:
			return &Error{Reason: "writing security.capability needs CAP_SETFCAP in a user namespace that maps the file's owner and group"}
		case sys.ENOTSUP:
			return &Error{Kind: ErrNotSupported, Reason: notSupportedReason}
		}
		return nil
	})
}

// removeError explains the errno of a security.capability removal.
func removeError(op, path string, err error) error {
	return explain(op, path, err, func(errno syscall.Errno) *Error {
		switch errno {
		case sys.ENODATA:
			return &Error{Kind: ErrNoCaps, Reason: "no capabilities to remove"}
		case sys.EPERM:
			return &Error{Reason: "removing security.capability needs CAP_SETFCAP in a user namespace that maps the file's owner and group"}
		case sys.ENOTSUP:
			return &Error{Kind: ErrNotSupported, Reason: notSupportedReason}
		}
		return nil
	})
}
