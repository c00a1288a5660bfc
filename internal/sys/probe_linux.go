package sys

import (
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ProbeXattratZ is [GetxattratZ] for the hot loop of a scan: the
// terminators are not checked (the caller guarantees them), and it returns
// the errno itself (0 on success) rather than an error, so that the common
// ENODATA costs no interface comparison.
//
// raw enters the kernel with [syscall.RawSyscall6], without telling the Go
// scheduler. A raw call keeps its P (the scheduler's processor) for its
// whole duration: no other goroutine runs on it meanwhile, and a
// stop-the-world waits for it to return. In exchange it skips the
// entersyscall/exitsyscall bookkeeping and, above all, sysmon's hand-off
// of a P whose call straddles its tick (futex wake-ups, context switches),
// which on a warm cache costs more than the call itself (about a
// microsecond). It suits a caller that has no other goroutine to run
// (workers ≤ GOMAXPROCS) and calls that are short when the inode is
// cached; an uncached one costs a disk read during which only that P
// waits.
func ProbeXattratZ(dirfd int, nameZ, attrZ []byte, flags int, buf []byte, raw bool) (int, syscall.Errno) {
	var args xattrArgs
	if len(buf) > 0 {
		args.Value = uint64(uintptr(unsafe.Pointer(&buf[0])))
		args.Size = uint32(min(len(buf), 1<<31))
	}
	var r uintptr
	var e syscall.Errno
	if raw {
		r, _, e = unix.RawSyscall6(unix.SYS_GETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(&nameZ[0])),
			uintptr(flags), uintptr(unsafe.Pointer(&attrZ[0])), uintptr(unsafe.Pointer(&args)), xattrArgsSize)
	} else {
		r, _, e = unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(&nameZ[0])),
			uintptr(flags), uintptr(unsafe.Pointer(&attrZ[0])), uintptr(unsafe.Pointer(&args)), xattrArgsSize)
	}
	runtime.KeepAlive(buf)
	runtime.KeepAlive(nameZ)
	runtime.KeepAlive(attrZ)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// ProbeLgetxattrZ is lgetxattr(2) in the manner of [ProbeXattratZ], for
// kernels without getxattrat(2): pathZ and attrZ are NUL-terminated (not
// checked), the errno is returned as is and raw bypasses the scheduler.
func ProbeLgetxattrZ(pathZ, attrZ []byte, buf []byte, raw bool) (int, syscall.Errno) {
	var bp unsafe.Pointer
	if len(buf) > 0 {
		bp = unsafe.Pointer(&buf[0])
	}
	var r uintptr
	var e syscall.Errno
	if raw {
		r, _, e = unix.RawSyscall6(unix.SYS_LGETXATTR, uintptr(unsafe.Pointer(&pathZ[0])),
			uintptr(unsafe.Pointer(&attrZ[0])), uintptr(bp), uintptr(len(buf)), 0, 0)
	} else {
		r, _, e = unix.Syscall6(unix.SYS_LGETXATTR, uintptr(unsafe.Pointer(&pathZ[0])),
			uintptr(unsafe.Pointer(&attrZ[0])), uintptr(bp), uintptr(len(buf)), 0, 0)
	}
	runtime.KeepAlive(pathZ)
	runtime.KeepAlive(attrZ)
	runtime.KeepAlive(buf)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}

// The calls below serve the hot loop of a shift the way [ProbeXattratZ]
// serves a scan's: they return the errno itself and, with raw, enter the
// kernel without telling the Go scheduler (see [ProbeXattratZ] for when
// that is right). Each converts its pointers to uintptr in the very call
// of Syscall6 or RawSyscall6, as unsafe.Pointer's rule (4) requires: a
// pointer passed on as a uintptr through another function may point to
// the old copy of a goroutine stack that grew meanwhile (the kernel then
// writes where nobody reads).

// OpenatZ is openat(2) of nameZ (NUL-terminated, not checked) relative to
// dirfd, retried on EINTR.
func OpenatZ(dirfd int, nameZ []byte, flags int, raw bool) (int, syscall.Errno) {
	for {
		var r uintptr
		var e syscall.Errno
		if raw {
			r, _, e = unix.RawSyscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&nameZ[0])), uintptr(flags), 0, 0, 0)
		} else {
			r, _, e = unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&nameZ[0])), uintptr(flags), 0, 0, 0)
		}
		runtime.KeepAlive(nameZ)
		if e != unix.EINTR {
			return int(r), e
		}
	}
}

// FstatZ is fstat(2).
func FstatZ(fd int, st *Stat, raw bool) syscall.Errno {
	var e syscall.Errno
	if raw {
		_, _, e = unix.RawSyscall6(unix.SYS_FSTAT, uintptr(fd), uintptr(unsafe.Pointer(st)), 0, 0, 0, 0)
	} else {
		_, _, e = unix.Syscall6(unix.SYS_FSTAT, uintptr(fd), uintptr(unsafe.Pointer(st)), 0, 0, 0, 0)
	}
	return e
}

// FlistxattrZ is flistxattr(2) into buf (not empty): the names, each
// NUL-terminated; ERANGE when buf is too small.
func FlistxattrZ(fd int, buf []byte, raw bool) (int, syscall.Errno) {
	var r uintptr
	var e syscall.Errno
	if raw {
		r, _, e = unix.RawSyscall6(unix.SYS_FLISTXATTR, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
	} else {
		r, _, e = unix.Syscall6(unix.SYS_FLISTXATTR, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0, 0)
	}
	runtime.KeepAlive(buf)
	return int(r), e
}

var emptyZ = []byte{0}

// FchownEmptyZ is fchownat(fd, "", uid, gid, AT_EMPTY_PATH|AT_SYMLINK_NOFOLLOW):
// it changes the owner of the file fd refers to, an O_PATH descriptor of
// a symlink included.
func FchownEmptyZ(fd int, uid, gid uint32, raw bool) syscall.Errno {
	const flags = unix.AT_EMPTY_PATH | unix.AT_SYMLINK_NOFOLLOW
	var e syscall.Errno
	if raw {
		_, _, e = unix.RawSyscall6(unix.SYS_FCHOWNAT, uintptr(fd), uintptr(unsafe.Pointer(&emptyZ[0])), uintptr(uid), uintptr(gid), flags, 0)
	} else {
		_, _, e = unix.Syscall6(unix.SYS_FCHOWNAT, uintptr(fd), uintptr(unsafe.Pointer(&emptyZ[0])), uintptr(uid), uintptr(gid), flags, 0)
	}
	return e
}

// The calls below serve a restore's inode operations (fchown, fchmod,
// utimensat, write and close of a small file just made): they only change
// in-memory metadata or fill the page cache and return in microseconds, so
// they enter the kernel with RawSyscall, without telling the Go scheduler.
// Through syscall.Syscall, each would let the runtime hand the processor
// to another thread when it lasts a little, and a restore makes a million
// of them: measured, about a third of the system time went to the
// scheduler's futex wake-ups and sleeps. They return the errno itself (0
// on success).

// FchownRaw is fchown(2), raw.
func FchownRaw(fd, uid, gid int) syscall.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_FCHOWN, uintptr(fd), uintptr(uid), uintptr(gid))
	return e
}

// FchmodRaw is fchmod(2), raw.
func FchmodRaw(fd int, mode uint32) syscall.Errno {
	_, _, e := unix.RawSyscall(unix.SYS_FCHMOD, uintptr(fd), uintptr(mode), 0)
	return e
}

// FutimensRaw is [Futimens], raw.
func FutimensRaw(fd int, ts *[2]Timespec) syscall.Errno {
	_, _, e := unix.RawSyscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	return e
}

// WriteRaw is write(2) of buf (not empty), raw; it does not retry EINTR.
func WriteRaw(fd int, buf []byte) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	runtime.KeepAlive(buf)
	return int(n), e
}
