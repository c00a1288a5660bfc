package sys

import (
	"errors"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

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

// SplitXattrNames splits the NUL-terminated names that listxattr(2)
// returned in buf.
func SplitXattrNames(buf []byte) []string { return splitNames(buf) }
