package sys

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Stat is struct stat as fstat(2) fills it.
type Stat = unix.Stat_t

// Flags and sentinel file descriptors, re-exported so that callers need not
// import x/sys.
const (
	AtFdcwd           = unix.AT_FDCWD            // AT_FDCWD
	AtSymlinkNofollow = unix.AT_SYMLINK_NOFOLLOW // AT_SYMLINK_NOFOLLOW
	AtEmptyPath       = unix.AT_EMPTY_PATH       // AT_EMPTY_PATH
	XattrCreate       = unix.XATTR_CREATE        // XATTR_CREATE
	XattrReplace      = unix.XATTR_REPLACE       // XATTR_REPLACE
	XattrSizeMax      = 64 * 1024                // XATTR_SIZE_MAX
	oPathFlags        = unix.O_PATH | unix.O_NOFOLLOW | unix.O_CLOEXEC
	oDirFlags         = unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK
	sIFMT             = unix.S_IFMT
)

// Directory entry types (d_type of struct linux_dirent64).
const (
	DTUnknown = unix.DT_UNKNOWN // DT_UNKNOWN
	DTFifo    = unix.DT_FIFO    // DT_FIFO
	DTChr     = unix.DT_CHR     // DT_CHR
	DTDir     = unix.DT_DIR     // DT_DIR
	DTBlk     = unix.DT_BLK     // DT_BLK
	DTReg     = unix.DT_REG     // DT_REG
	DTLnk     = unix.DT_LNK     // DT_LNK
	DTSock    = unix.DT_SOCK    // DT_SOCK
)

// ModeType converts the S_IFMT bits of st_mode to [fs.FileMode] type bits
// (0 for a regular file).
func ModeType(mode uint32) fs.FileMode {
	switch mode & sIFMT {
	case unix.S_IFREG:
		return 0
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFSOCK:
		return fs.ModeSocket
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	}
	return fs.ModeIrregular
}

// DirentType converts a d_type to [fs.FileMode] type bits. ok is false for
// DT_UNKNOWN (and anything unexpected): the caller must lstat the entry.
func DirentType(dt uint8) (mode fs.FileMode, ok bool) {
	switch dt {
	case DTReg:
		return 0, true
	case DTDir:
		return fs.ModeDir, true
	case DTLnk:
		return fs.ModeSymlink, true
	case DTFifo:
		return fs.ModeNamedPipe, true
	case DTSock:
		return fs.ModeSocket, true
	case DTChr:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case DTBlk:
		return fs.ModeDevice, true
	}
	return 0, false
}

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

// OpenDirAtZ opens the directory nameZ (one NUL-terminated path component,
// as [ParseDirents] hands it out) relative to the directory fd dirfd, with
// O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC|O_NONBLOCK, retrying on EINTR: a symlink
// gives ELOOP (or ENOTDIR) and is never followed. nameZ may be neither "."
// nor ".." and must hold no '/' (else EINVAL), so the result is always a
// child of dirfd (or a mount on it). Unlike [Openat] it allocates nothing.
// raw enters the kernel without telling the Go scheduler (see
// [ProbeXattratZ]).
func OpenDirAtZ(dirfd int, nameZ []byte, raw bool) (int, error) {
	if len(nameZ) < 2 || nameZ[len(nameZ)-1] != 0 || bytes.IndexByte(nameZ[:len(nameZ)-1], '/') >= 0 ||
		string(nameZ) == ".\x00" || string(nameZ) == "..\x00" {
		return -1, unix.EINVAL
	}
	for {
		var r uintptr
		var e syscall.Errno
		if raw {
			r, _, e = unix.RawSyscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&nameZ[0])),
				uintptr(oDirFlags), 0, 0, 0)
		} else {
			r, _, e = unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&nameZ[0])),
				uintptr(oDirFlags), 0, 0, 0)
		}
		runtime.KeepAlive(nameZ)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return -1, e
	}
}

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

// Flags of open(2) for [Openat] and [Openat2], re-exported so that callers
// need not import x/sys.
const (
	// OPathNoFollow opens a handle on the file itself (O_PATH|O_NOFOLLOW|
	// O_CLOEXEC): a final symlink yields the link, nothing is opened for
	// I/O and no permission on the file is needed.
	OPathNoFollow = oPathFlags
	// ODirPath opens a handle on a directory, following symlinks
	// (O_PATH|O_DIRECTORY|O_CLOEXEC).
	ODirPath = unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC
	// OReadNoFollow opens a file for reading without side effects on a
	// device, fifo or tty, never following a final symlink
	// (O_RDONLY|O_NOFOLLOW|O_NONBLOCK|O_NOCTTY|O_CLOEXEC).
	OReadNoFollow = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_NOCTTY | unix.O_CLOEXEC
	// ODirectory makes the open fail with ENOTDIR unless the file is a
	// directory (O_DIRECTORY).
	ODirectory = unix.O_DIRECTORY
)

// Resolve flags of openat2(2) (struct open_how.resolve, Linux 5.6+).
const (
	ResolveNoMagiclinks = unix.RESOLVE_NO_MAGICLINKS // RESOLVE_NO_MAGICLINKS
	ResolveNoSymlinks   = unix.RESOLVE_NO_SYMLINKS   // RESOLVE_NO_SYMLINKS
	ResolveBeneath      = unix.RESOLVE_BENEATH       // RESOLVE_BENEATH
	ResolveInRoot       = unix.RESOLVE_IN_ROOT       // RESOLVE_IN_ROOT
)

// Openat2 is openat2(2) (Linux 5.6+; ENOSYS before) with flags and the
// resolve flags resolve (mode 0: it never creates), retried on EINTR and
// on EAGAIN, which RESOLVE_IN_ROOT and RESOLVE_BENEATH answer when a
// rename or mount raced with the lookup.
func Openat2(dirfd int, path string, flags int, resolve uint64) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags), Resolve: resolve}
	for {
		fd, err := unix.Openat2(dirfd, path, &how)
		if err != unix.EINTR && err != unix.EAGAIN {
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

// Fstat is fstat(2).
func Fstat(fd int) (Stat, error) {
	var st Stat
	err := unix.Fstat(fd, &st)
	return st, err
}

// StatFollow is stat(2): unlike [Lstat], it follows symlinks.
func StatFollow(path string) (Stat, error) {
	var st Stat
	err := unix.Stat(path, &st)
	return st, err
}

// Lstat is lstat(2).
func Lstat(path string) (Stat, error) {
	var st Stat
	err := unix.Lstat(path, &st)
	return st, err
}

// FstatatNoFollow is fstatat(2) with AT_SYMLINK_NOFOLLOW.
func FstatatNoFollow(dirfd int, name string) (Stat, error) {
	var st Stat
	err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
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

// Fgetxattr is fgetxattr(2) into buf; it returns the length of the value.
func Fgetxattr(fd int, attr string, buf []byte) (int, error) {
	return size(unix.Fgetxattr(fd, attr, buf))
}

// size makes the length 0 on error (x/sys passes the raw -1 through).
func size(n int, err error) (int, error) {
	if err != nil {
		return 0, err
	}
	return n, nil
}

// Getxattr is getxattr(2) (follow is true) or lgetxattr(2) into buf.
func Getxattr(path, attr string, buf []byte, follow bool) (int, error) {
	if follow {
		return size(unix.Getxattr(path, attr, buf))
	}
	return size(unix.Lgetxattr(path, attr, buf))
}

// FgetxattrAll returns the whole value of attr on fd, growing its buffer
// when the value changes size between the length query and the read
// (ERANGE).
func FgetxattrAll(fd int, attr string) ([]byte, error) {
	return getAll(func(b []byte) (int, error) { return Fgetxattr(fd, attr, b) })
}

// GetxattrAll is [FgetxattrAll] by path; follow selects getxattr(2) over
// lgetxattr(2).
func GetxattrAll(path, attr string, follow bool) ([]byte, error) {
	return getAll(func(b []byte) (int, error) { return Getxattr(path, attr, b, follow) })
}

// getAll reads a value with a 256-byte first guess, then a length query,
// retrying while the kernel answers ERANGE.
func getAll(get func([]byte) (int, error)) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := get(buf)
		if err == nil {
			return buf[:n:n], nil
		}
		if !errors.Is(err, unix.ERANGE) {
			return nil, err
		}
		size, err := get(nil)
		if err != nil {
			return nil, err
		}
		buf = make([]byte, max(size, len(buf)*2))
	}
}

// Fsetxattr is fsetxattr(2). flags is 0, [XattrCreate] or [XattrReplace].
func Fsetxattr(fd int, attr string, data []byte, flags int) error {
	return unix.Fsetxattr(fd, attr, data, flags)
}

// Setxattr is setxattr(2) (follow is true) or lsetxattr(2).
func Setxattr(path, attr string, data []byte, flags int, follow bool) error {
	if follow {
		return unix.Setxattr(path, attr, data, flags)
	}
	return unix.Lsetxattr(path, attr, data, flags)
}

// Fremovexattr is fremovexattr(2).
func Fremovexattr(fd int, attr string) error { return unix.Fremovexattr(fd, attr) }

// Removexattr is removexattr(2) (follow is true) or lremovexattr(2).
func Removexattr(path, attr string, follow bool) error {
	if follow {
		return unix.Removexattr(path, attr)
	}
	return unix.Lremovexattr(path, attr)
}

// Flistxattr returns the names of fd's xattrs (flistxattr(2), retried on
// ERANGE).
func Flistxattr(fd int) ([]string, error) {
	return listAll(func(b []byte) (int, error) { return size(unix.Flistxattr(fd, b)) })
}

// Listxattr returns the names of path's xattrs: listxattr(2) when follow is
// true, else llistxattr(2).
func Listxattr(path string, follow bool) ([]string, error) {
	return listAll(func(b []byte) (int, error) {
		if follow {
			return size(unix.Listxattr(path, b))
		}
		return size(unix.Llistxattr(path, b))
	})
}

// Listxattrat returns the names of the xattrs of name relative to dirfd
// (listxattrat(2), Linux 6.13+, ENOSYS before). flags: [AtSymlinkNofollow],
// [AtEmptyPath].
func Listxattrat(dirfd int, name string, flags int) ([]string, error) {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return nil, err
	}
	return listAll(func(b []byte) (int, error) {
		var bp unsafe.Pointer
		if len(b) > 0 {
			bp = unsafe.Pointer(&b[0])
		}
		r, _, e := unix.Syscall6(unix.SYS_LISTXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)),
			uintptr(flags), uintptr(bp), uintptr(len(b)), 0)
		runtime.KeepAlive(p)
		if e != 0 {
			return 0, e
		}
		return int(r), nil
	})
}

func listAll(list func([]byte) (int, error)) ([]string, error) {
	buf := make([]byte, 256)
	for {
		n, err := list(buf)
		if err == nil {
			return splitNames(buf[:n]), nil
		}
		if !errors.Is(err, unix.ERANGE) {
			return nil, err
		}
		size, err := list(nil)
		if err != nil {
			return nil, err
		}
		buf = make([]byte, max(size, len(buf)*2))
	}
}

func splitNames(b []byte) []string {
	var names []string
	for _, s := range strings.Split(string(b), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	return names
}

// xattrArgs is struct xattr_args of include/uapi/linux/xattr.h
// (XATTR_ARGS_SIZE_VER0 = 16 bytes).
type xattrArgs struct {
	Value uint64 // __aligned_u64 value: user pointer to the buffer
	Size  uint32 // size of the buffer; 0 asks for the length
	Flags uint32 // must be 0 for getxattrat
}

const xattrArgsSize = unsafe.Sizeof(xattrArgs{})

// Getxattrat is getxattrat(2) (Linux 6.13+; syscall 464 on amd64): it reads
// attr of name relative to dirfd into buf and returns the value's length
// (buf empty: the length query). flags: [AtSymlinkNofollow] and/or
// [AtEmptyPath] (then name may be "" and dirfd is the file, but not an
// O_PATH fd: EBADF). Kernels without it return ENOSYS; see [HasXattrat].
func Getxattrat(dirfd int, name, attr string, flags int, buf []byte) (int, error) {
	n, err := unix.BytePtrFromString(name)
	if err != nil {
		return 0, err
	}
	a, err := unix.BytePtrFromString(attr)
	if err != nil {
		return 0, err
	}
	return getxattrat(dirfd, n, a, flags, buf)
}

// GetxattratZ is [Getxattrat] with name and attr given as NUL-terminated
// byte strings (as [ReadDir] hands out names), so that a scan allocates
// nothing per file. A missing terminator gives EINVAL.
func GetxattratZ(dirfd int, nameZ, attrZ []byte, flags int, buf []byte) (int, error) {
	if len(nameZ) == 0 || nameZ[len(nameZ)-1] != 0 || len(attrZ) == 0 || attrZ[len(attrZ)-1] != 0 {
		return 0, unix.EINVAL
	}
	return getxattrat(dirfd, &nameZ[0], &attrZ[0], flags, buf)
}

func getxattrat(dirfd int, name, attr *byte, flags int, buf []byte) (int, error) {
	var args xattrArgs
	if len(buf) > 0 {
		args.Value = uint64(uintptr(unsafe.Pointer(&buf[0])))
		args.Size = uint32(min(len(buf), 1<<31))
	}
	r, _, e := unix.Syscall6(unix.SYS_GETXATTRAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
		uintptr(flags), uintptr(unsafe.Pointer(attr)), uintptr(unsafe.Pointer(&args)), xattrArgsSize)
	// buf is referenced from args only as an integer: keep it alive (Go's
	// heap does not move objects, and a stack does not move during a
	// system call).
	runtime.KeepAlive(buf)
	runtime.KeepAlive(name)
	runtime.KeepAlive(attr)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

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

var xattrat struct {
	once sync.Once
	ok   bool
}

// HasXattrat reports whether the kernel has getxattrat(2) and
// listxattrat(2). It probes once, with a length query on "/"; ENOSYS (or
// EPERM, as some seccomp filters answer for unknown calls) means no.
func HasXattrat() bool {
	xattrat.once.Do(func() {
		_, err := Getxattrat(AtFdcwd, "/", "security.capability", AtSymlinkNofollow, nil)
		xattrat.ok = !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM)
	})
	return xattrat.ok
}

// Getdents is getdents64(2): it fills buf with struct linux_dirent64
// records; 0 means the end of the directory.
func Getdents(fd int, buf []byte) (int, error) {
	for {
		n, err := unix.Getdents(fd, buf)
		if err != unix.EINTR {
			return size(n, err)
		}
	}
}

// GetdentsRaw is [Getdents] entering the kernel without telling the Go
// scheduler (see [ProbeXattratZ] for when that is right). buf must not be
// empty.
func GetdentsRaw(fd int, buf []byte) (int, error) {
	for {
		r, _, e := unix.RawSyscall(unix.SYS_GETDENTS64, uintptr(fd), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		runtime.KeepAlive(buf)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// CloseRaw is close(2) entering the kernel without telling the Go
// scheduler (see [ProbeXattratZ]); meant for directory fds, whose close
// never waits.
func CloseRaw(fd int) error {
	if _, _, e := unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0); e != 0 {
		return e
	}
	return nil
}

// Offsets in struct linux_dirent64.
const (
	direntIno    = 0  // u64 d_ino
	direntReclen = 16 // u16 d_reclen
	direntType   = 18 // u8 d_type
	direntName   = 19 // char d_name[]
)

// ParseDirents calls fn for each record in buf (the first n bytes a
// [Getdents] filled), skipping "." and "..". nameZ is the entry's name
// followed by its NUL terminator, a slice of buf valid until buf is reused.
// fn returns false to stop early; ParseDirents then returns false.
func ParseDirents(buf []byte, fn func(nameZ []byte, typ uint8, ino uint64) bool) bool {
	for len(buf) >= direntName {
		reclen := int(binary.NativeEndian.Uint16(buf[direntReclen:]))
		if reclen < direntName || reclen > len(buf) {
			return true // corrupt record: stop (cannot happen with a real kernel)
		}
		rec := buf[:reclen]
		buf = buf[reclen:]
		name := rec[direntName:]
		i := bytes.IndexByte(name, 0)
		if i < 0 {
			continue
		}
		if (i == 1 && name[0] == '.') || (i == 2 && name[0] == '.' && name[1] == '.') {
			continue
		}
		ino := binary.NativeEndian.Uint64(rec[direntIno:])
		if !fn(name[:i+1], rec[direntType], ino) {
			return false
		}
	}
	return true
}

// Errno constants used by callers of this package, as [syscall.Errno].
const (
	ENODATA    = syscall.ENODATA
	ENOTSUP    = syscall.ENOTSUP
	EOPNOTSUPP = syscall.EOPNOTSUPP
	EOVERFLOW  = syscall.EOVERFLOW
	EINVAL     = syscall.EINVAL
	EPERM      = syscall.EPERM
	ERANGE     = syscall.ERANGE
	ENOSYS     = syscall.ENOSYS
	EBADF      = syscall.EBADF
	ELOOP      = syscall.ELOOP
	ENOENT     = syscall.ENOENT
	ENOTDIR    = syscall.ENOTDIR
	EXDEV      = syscall.EXDEV
	EACCES     = syscall.EACCES
)

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

// SplitXattrNames splits the NUL-terminated names that listxattr(2)
// returned in buf.
func SplitXattrNames(buf []byte) []string { return splitNames(buf) }
