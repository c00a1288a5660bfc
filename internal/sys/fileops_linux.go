package sys

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The calls below are x/sys/unix's, with the same names and signatures:
// thin wrappers that add no retry (a caller that loops on EINTR says so)
// and no context (the caller adds the path, see the package doc).

// Open is open(2).
func Open(path string, mode int, perm uint32) (int, error) { return unix.Open(path, mode, perm) }

// Dup is dup(2).
func Dup(fd int) (int, error) { return unix.Dup(fd) }

// Read is read(2).
func Read(fd int, p []byte) (int, error) { return unix.Read(fd, p) }

// Pread is pread64(2).
func Pread(fd int, p []byte, offset int64) (int, error) { return unix.Pread(fd, p, offset) }

// Seek is lseek(2).
func Seek(fd int, offset int64, whence int) (int64, error) { return unix.Seek(fd, offset, whence) }

// Fdatasync is fdatasync(2).
func Fdatasync(fd int) error { return unix.Fdatasync(fd) }

// Flock is flock(2).
func Flock(fd int, how int) error { return unix.Flock(fd, how) }

// Geteuid is geteuid(2).
func Geteuid() int { return unix.Geteuid() }

// Mkdir is mkdir(2).
func Mkdir(path string, mode uint32) error { return unix.Mkdir(path, mode) }

// Mkdirat is mkdirat(2).
func Mkdirat(dirfd int, path string, mode uint32) error { return unix.Mkdirat(dirfd, path, mode) }

// Mknodat is mknodat(2).
func Mknodat(dirfd int, path string, mode uint32, dev int) error {
	return unix.Mknodat(dirfd, path, mode, dev)
}

// Symlinkat is symlinkat(2).
func Symlinkat(oldpath string, newdirfd int, newpath string) error {
	return unix.Symlinkat(oldpath, newdirfd, newpath)
}

// Linkat is linkat(2).
func Linkat(olddirfd int, oldpath string, newdirfd int, newpath string, flags int) error {
	return unix.Linkat(olddirfd, oldpath, newdirfd, newpath, flags)
}

// Renameat is renameat(2).
func Renameat(olddirfd int, oldpath string, newdirfd int, newpath string) error {
	return unix.Renameat(olddirfd, oldpath, newdirfd, newpath)
}

// Renameat2 is renameat2(2) (Linux 3.15+).
func Renameat2(olddirfd int, oldpath string, newdirfd int, newpath string, flags uint) error {
	return unix.Renameat2(olddirfd, oldpath, newdirfd, newpath, flags)
}

// Unlinkat is unlinkat(2); flags is 0 or [AT_REMOVEDIR].
func Unlinkat(dirfd int, path string, flags int) error { return unix.Unlinkat(dirfd, path, flags) }

// Readlinkat is readlinkat(2).
func Readlinkat(dirfd int, path string, buf []byte) (int, error) {
	return unix.Readlinkat(dirfd, path, buf)
}

// Chmod is chmod(2); it follows symlinks.
func Chmod(path string, mode uint32) error { return unix.Chmod(path, mode) }

// Fchmod is fchmod(2).
func Fchmod(fd int, mode uint32) error { return unix.Fchmod(fd, mode) }

// Fchown is fchown(2).
func Fchown(fd int, uid int, gid int) error { return unix.Fchown(fd, uid, gid) }

// Fchownat is fchownat(2).
func Fchownat(dirfd int, path string, uid int, gid int, flags int) error {
	return unix.Fchownat(dirfd, path, uid, gid, flags)
}

// UtimesNanoAt is utimensat(2) on path relative to dirfd.
func UtimesNanoAt(dirfd int, path string, ts []Timespec, flags int) error {
	return unix.UtimesNanoAt(dirfd, path, ts, flags)
}

// Futimens sets the times of the open file fd: utimensat(fd, NULL, ts, 0),
// which x/sys does not offer (its Futimes takes microseconds).
func Futimens(fd int, ts *[2]Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// Fstatat is fstatat(2); flags may hold [AT_SYMLINK_NOFOLLOW] (see also
// [FstatatNoFollow]).
func Fstatat(dirfd int, path string, st *Stat_t, flags int) error {
	return unix.Fstatat(dirfd, path, st, flags)
}

// Statx is statx(2) (Linux 4.11+).
func Statx(dirfd int, path string, flags int, mask int, st *Statx_t) error {
	return unix.Statx(dirfd, path, flags, mask, st)
}

// ParseDirent is x/sys's parser of getdents64(2) records: it appends to
// names the names in buf (skipping "." and ".."), at most limit of them
// (-1: all), and returns the bytes consumed and the count added.
func ParseDirent(buf []byte, limit int, names []string) (consumed int, count int, newnames []string) {
	return unix.ParseDirent(buf, limit, names)
}

// NsecToTimespec converts nanoseconds since the epoch to a [Timespec].
func NsecToTimespec(nsec int64) Timespec { return unix.NsecToTimespec(nsec) }

// Mkdev returns the device number of major and minor.
func Mkdev(major, minor uint32) uint64 { return unix.Mkdev(major, minor) }

// Major returns the major part of the device number dev.
func Major(dev uint64) uint32 { return unix.Major(dev) }

// Minor returns the minor part of the device number dev.
func Minor(dev uint64) uint32 { return unix.Minor(dev) }
