// Package fcaps reads, writes and removes file capabilities (the
// security.capability extended attribute) on real files, and scans trees
// for them in parallel.
//
// # Files, not paths
//
// [Get], [Set] and [Remove] never follow a final symlink and act on the
// file they inspected, never on a path that could change under them: the
// path is opened O_PATH|O_NOFOLLOW (no open(2) side effect on a device or
// fifo, no permission needed), the descriptor is fstat'ed and anything but
// a regular file is refused with [ErrNotRegular] (setcap refuses them too,
// and the kernel acts on caps only when it execs a regular file), then the
// xattr call goes through /proc/self/fd/N, the magic link to that inode
// (fgetxattr(2) refuses O_PATH descriptors). [FGet], [FSet] and [FRemove]
// work on an [*os.File] the caller opened, and [SetRawFd] writes an
// encoded value through a descriptor the caller holds (a restore's): all
// the writers go through it, so a refused write is explained alike.
//
// The writers follow no symlink in the directories of the path either:
// [Set], [Remove] and a [Setter] walk it one component at a time with
// O_PATH|O_NOFOLLOW and refuse a link with [ErrSymlink], since the root
// user of a container owns the directories of its rootfs and could plant
// one (rootfs/usr/bin -> a host directory). A container's paths are
// resolved inside its root with a [Lookup] whose [Root] is the rootfs or
// /proc/PID/root (openat2(2) RESOLVE_IN_ROOT: links are followed as the
// container follows them, never out of it); [Lookup.Open] gives the
// [File] that [File.Get], [Setter.SetFile] and [Setter.RemoveFile] act on.
// [Get] follows the directories' links, as getcap does: it changes
// nothing.
//
// # Namespaces
//
// The kernel converts the value for the caller's user namespace on read
// and write (see docs/kernel-semantics.md §3): a revision-3 rootid that is
// the caller's namespace root reads back as revision 2, one mapped to
// another uid reads back with that uid, and one not mapped at all fails
// with EOVERFLOW, reported as [ErrNotVisible]. A revision-3 write whose
// rootid is not mapped fails with EINVAL ([ErrRootIDNotMapped]).
//
// # Errors
//
// Every error is an [*fs.PathError] naming the system call and the path.
// Its Err keeps the errno (errors.Is(err, syscall.EOVERFLOW)) and, when
// this package can say more, is an [*Error] that also matches a sentinel
// (errors.Is(err, ErrNotVisible)) and explains the refusal in words.
//
// # Rootless writes
//
// A [Setter] writes and removes caps directly, or, when the caller lacks
// CAP_SETFCAP over the file ([HelperAuto]) or always ([HelperAlways]),
// through one helper user namespace (see userns.StartHelper) mapped onto the
// caller's own ids and subordinate ranges. There it always writes revision
// 3 with the rootid expressed inside the helper, and the kernel stores the
// host rootid; an owner, group or rootid outside the helper's maps is
// refused ([ErrOutsideHelperMap]) before anything is written.
//
// # Audit
//
// [Audit] and [AuditArchive] run the same pure rules ([Rules], [NewAuditor])
// over a live tree (through [Scan]) or over the members of a tar archive
// (SCHILY.xattr.* and LIBARCHIVE.xattr.* records, plain, gzip or zstd),
// and report [Finding]s: rule, severity, path, message, and where the caps
// are honoured (all namespaces for host-scoped caps, else the live
// namespaces whose root is the rootid, and their descendants).
// [Baseline] records the caps of a run for later comparison.
//
// # Scanning
//
// [Scan] is the engine of `nscap get -r` and of audit: bounded parallel
// workers, getdents64(2) with d_type, one getxattrat(2) per regular file
// (Linux 6.13+; lgetxattr(2) by path before), per-path errors delivered to
// the callback, results streamed.
package fcaps
