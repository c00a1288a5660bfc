package sys

import (
	"bytes"
	"encoding/binary"
	"io/fs"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

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
