// Package sys holds the thin system-call wrappers nscap needs on Linux.
//
// It is the only package of the module that imports golang.org/x/sys/unix
// (enforced by depguard). The wrappers return the raw [syscall.Errno] (the
// same type as unix.Errno) so callers can match it with errors.Is and add
// the path as an *fs.PathError; they never add context themselves.
//
// Besides the usual f*xattr calls (retried on ERANGE when the caller asks
// for a whole value) it provides what x/sys lacks:
//
//   - [Getxattrat] and [Listxattrat]: getxattrat(2)/listxattrat(2), Linux
//     6.13+, with struct xattr_args built here; [HasXattrat] probes once
//     whether the running kernel has them (ENOSYS otherwise);
//   - [ReadDir]: getdents64(2) parsing that hands out the NUL-terminated
//     name inside the kernel's buffer, so that a scanner can probe every
//     entry without allocating;
//   - [OpenPath]/[OpenDir]: openat(2)/openat2(2) with O_NOFOLLOW and
//     RESOLVE_NO_SYMLINKS; [Openat2] and [OpenInRoot] (openat2(2)
//     RESOLVE_IN_ROOT: a container's paths resolved inside its root);
//   - the scanner's hot loop, allocation-free and optionally raw (not
//     announced to the Go scheduler, see [ProbeXattratZ] for when that is
//     right): [ProbeXattratZ], [ProbeLgetxattrZ], [OpenDirAtZ],
//     [GetdentsRaw], [CloseRaw].
//
// Elsewhere it mirrors x/sys/unix under the same names (consts_linux.go,
// fileops_linux.go: sys.Unlinkat, sys.O_RDONLY, sys.ENOENT…), so that the
// engines reach the kernel only through this package. Files: open_linux.go
// (openat, openat2, /proc/self/fd), stat_linux.go, xattr_linux.go,
// dirent_linux.go (getdents64), probe_linux.go (raw hot-loop calls).
package sys
