package sys

import "golang.org/x/sys/unix"

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

// The names below mirror golang.org/x/sys/unix, so that a call site reads
// sys.O_RDONLY where it read unix.O_RDONLY (revive's var-naming and staticcheck's
// ST1003 are off for this file in .golangci.yml).

// Errno is an error number, the same type as [syscall.Errno].
type Errno = unix.Errno

// Stat_t is struct stat, the same type as [Stat].
type Stat_t = unix.Stat_t

// Statx_t is struct statx.
type Statx_t = unix.Statx_t

// Timespec is struct timespec.
type Timespec = unix.Timespec

// Flags of open(2).
const (
	O_APPEND    = unix.O_APPEND
	O_CLOEXEC   = unix.O_CLOEXEC
	O_CREAT     = unix.O_CREAT
	O_DIRECTORY = unix.O_DIRECTORY
	O_EXCL      = unix.O_EXCL
	O_NOATIME   = unix.O_NOATIME
	O_NOCTTY    = unix.O_NOCTTY
	O_NOFOLLOW  = unix.O_NOFOLLOW
	O_NONBLOCK  = unix.O_NONBLOCK
	O_PATH      = unix.O_PATH
	O_RDONLY    = unix.O_RDONLY
	O_RDWR      = unix.O_RDWR
	O_TMPFILE   = unix.O_TMPFILE
	O_WRONLY    = unix.O_WRONLY
)

// Flags of the *at(2) calls, renameat2(2), openat2(2), flock(2), lseek(2)
// and statx(2).
const (
	AT_EMPTY_PATH         = unix.AT_EMPTY_PATH
	AT_FDCWD              = unix.AT_FDCWD
	AT_REMOVEDIR          = unix.AT_REMOVEDIR
	AT_STATX_SYNC_AS_STAT = unix.AT_STATX_SYNC_AS_STAT
	AT_SYMLINK_FOLLOW     = unix.AT_SYMLINK_FOLLOW
	AT_SYMLINK_NOFOLLOW   = unix.AT_SYMLINK_NOFOLLOW
	RENAME_NOREPLACE      = unix.RENAME_NOREPLACE
	RESOLVE_BENEATH       = unix.RESOLVE_BENEATH
	RESOLVE_NO_MAGICLINKS = unix.RESOLVE_NO_MAGICLINKS
	RESOLVE_NO_SYMLINKS   = unix.RESOLVE_NO_SYMLINKS
	LOCK_EX               = unix.LOCK_EX
	LOCK_NB               = unix.LOCK_NB
	SEEK_DATA             = unix.SEEK_DATA
	SEEK_HOLE             = unix.SEEK_HOLE
	STATX_BTIME           = unix.STATX_BTIME
	STATX_INO             = unix.STATX_INO
	PathMax               = unix.PathMax // PATH_MAX
)

// File type and set-id bits of st_mode.
const (
	S_IFMT   = unix.S_IFMT
	S_IFBLK  = unix.S_IFBLK
	S_IFCHR  = unix.S_IFCHR
	S_IFDIR  = unix.S_IFDIR
	S_IFIFO  = unix.S_IFIFO
	S_IFLNK  = unix.S_IFLNK
	S_IFREG  = unix.S_IFREG
	S_IFSOCK = unix.S_IFSOCK
	S_ISGID  = unix.S_ISGID
	S_ISUID  = unix.S_ISUID
)

// Errno values callers match with errors.Is (the same values as syscall's).
const (
	EACCES       = unix.EACCES
	EAGAIN       = unix.EAGAIN
	EBADF        = unix.EBADF
	EEXIST       = unix.EEXIST
	EINTR        = unix.EINTR
	EINVAL       = unix.EINVAL
	EISDIR       = unix.EISDIR
	ELOOP        = unix.ELOOP
	ENAMETOOLONG = unix.ENAMETOOLONG
	ENODATA      = unix.ENODATA
	ENOENT       = unix.ENOENT
	ENOSYS       = unix.ENOSYS
	ENOTDIR      = unix.ENOTDIR
	ENOTEMPTY    = unix.ENOTEMPTY
	ENOTSUP      = unix.ENOTSUP
	ENXIO        = unix.ENXIO
	EOPNOTSUPP   = unix.EOPNOTSUPP
	EOVERFLOW    = unix.EOVERFLOW
	EPERM        = unix.EPERM
	ERANGE       = unix.ERANGE
	ESTALE       = unix.ESTALE
	ETXTBSY      = unix.ETXTBSY
	EWOULDBLOCK  = unix.EWOULDBLOCK
	EXDEV        = unix.EXDEV
)
