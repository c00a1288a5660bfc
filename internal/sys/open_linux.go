package sys

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Close closes fd.
func Close(fd int) error { return unix.Close(fd) }

// Openat is openat(2), retried on EINTR.
func Openat(dirfd int, path string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, path, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// OpenPath opens path with O_PATH|O_NOFOLLOW|O_CLOEXEC: it never follows a
// final symlink (the fd then refers to the link itself), never opens the
// file for I/O (no side effect on devices or fifos) and needs no permission
// on the file. Such an fd serves fstat(2) and the /proc/self/fd magic link
// ([ProcFdPath]); the f*xattr calls refuse it with EBADF.
func OpenPath(path string) (int, error) { return Openat(AtFdcwd, path, oPathFlags, 0) }

// OpenDir opens the directory path for reading with O_DIRECTORY|O_NOFOLLOW:
// a final symlink gives ELOOP (or ENOTDIR).
func OpenDir(path string) (int, error) { return Openat(AtFdcwd, path, oDirFlags, 0) }

var noOpenat2 atomic.Bool

// OpenDirBeneath opens the directory rel below the directory fd rootfd with
// openat2(2) RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS (Linux 5.6+): no component
// of rel may be a symlink or escape rootfd, so a tree changed concurrently
// cannot redirect the walk. On kernels without openat2 it falls back to
// openat(2) with O_NOFOLLOW, which checks the final component only.
func OpenDirBeneath(rootfd int, rel string) (int, error) {
	if !noOpenat2.Load() {
		how := unix.OpenHow{Flags: oDirFlags, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
		for {
			fd, err := unix.Openat2(rootfd, rel, &how)
			if err == unix.EINTR || err == unix.EAGAIN { // EAGAIN: concurrent rename, retry
				continue
			}
			if err != unix.ENOSYS {
				return fd, err
			}
			noOpenat2.Store(true)
			break
		}
	}
	return Openat(rootfd, rel, oDirFlags, 0)
}

// Openat2 is openat2(2) (Linux 5.6+; ENOSYS before) with flags and the
// resolve flags resolve (mode 0: it never creates), retried on EINTR and
// on EAGAIN, which RESOLVE_IN_ROOT and RESOLVE_BENEATH answer when a
// rename or mount raced with the lookup. It gives up after 64 tries, so
// that a tree renamed without pause cannot hold the caller forever: the
// EAGAIN (or EINTR) is then returned.
func Openat2(dirfd int, path string, flags int, resolve uint64) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags), Resolve: resolve}
	for i := 0; ; i++ {
		fd, err := unix.Openat2(dirfd, path, &how)
		if (err != unix.EINTR && err != unix.EAGAIN) || i == 63 {
			return fd, err
		}
	}
}

// OpenInRoot opens path below the directory fd rootfd as a process whose
// root directory rootfd is would: openat2(2) RESOLVE_IN_ROOT|
// RESOLVE_NO_MAGICLINKS (Linux 5.6+). Symlinks are followed, but an
// absolute path or symlink starts at rootfd and ".." stops there, so the
// lookup never leaves it; magic links (/proc/PID/fd/N, /proc/PID/root)
// are refused with ELOOP. flags holds O_NOFOLLOW to open a final symlink
// itself (with O_PATH) or refuse it (ELOOP otherwise).
func OpenInRoot(rootfd int, path string, flags int) (int, error) {
	return Openat2(rootfd, path, flags, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
}

// ProcFdPath returns /proc/self/fd/N, the magic link to fd's file. Path
// calls on it (getxattr(2), setxattr(2), …) act on that very file whatever
// happens to the path it was opened by, and work on O_PATH descriptors.
func ProcFdPath(fd int) string { return "/proc/self/fd/" + itoa(fd) }

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}
