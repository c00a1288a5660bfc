package sys

import (
	"io/fs"

	"golang.org/x/sys/unix"
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
