// Package backup archives container root filesystems namespace-relative,
// and restores and verifies such archives under any id map.
//
// # Archives
//
// An archive is a POSIX pax tar stream (optionally gzip, zstd or xz
// compressed). Its first member is a pax global header whose standard
// "comment" record names the producer and the source maps (see
// [Meta.Comment]); every reader ignores that record silently. Every xattr
// of a file is stored as a SCHILY.xattr.NAME record, the form GNU tar
// --xattrs and bsdtar read and write.
//
// In an archive made with a map (the container's uid_map and gid_map,
// namespace ids to host ids), everything that names an id is stored as
// the container sees it, that is, exactly what `tar --xattrs` run inside
// that container would store:
//
//   - owners: host uid/gid translated to the container's;
//   - security.capability (struct vfs_ns_cap_data, little-endian,
//     include/uapi/linux/capability.h): caps whose rootid is the
//     container root are stored as revision 2 (20 bytes), caps of a
//     nested namespace as revision 3 (24 bytes) with the rootid as the
//     container sees it. A rootid outside the map (a host-scoped revision
//     2, or the caps of another container) is handled by the
//     [ForeignCaps] policy: fail (default), skip with a warning, or keep
//     host-scoped, marking the member with a [HostScopedComment];
//   - POSIX ACLs (system.posix_acl_access, system.posix_acl_default,
//     little-endian: u32 version 2, then {u16 tag, u16 perm, u32 id}):
//     the ids of ACL_USER and ACL_GROUP entries.
//
// Nothing is lost or changed silently: an owner outside the map, a foreign
// cap under the fail policy or an unreadable file is an error naming the
// path, and [Archiver.WriteFile] then leaves no output file.
//
// The translations are pure functions ([CapsToArchive], [CapsFromArchive],
// [ACLToArchive], [ACLFromArchive]) shared by backup and restore.
//
// # Engines
//
// This package is the public face of engines that live under internal/
// (their types are re-exported here, see api.go): internal/archiver
// behind [Archiver], internal/restorer behind [Restore], [Verify] and
// [List], internal/shifter behind [Shift], internal/archive for what they
// share (the header, the policies, the translation). The rootless
// variants ([NewRootless], [RestoreRootless], [VerifyRootless],
// [ShiftRootless]) run the same engines in a helper user namespace
// (userns.Helper).
//
// [Archiver.Write] walks the tree with directory file descriptors (each
// file is opened relative to its parent with O_NOFOLLOW, never by path),
// so a rootfs changed concurrently cannot redirect it. Workers stat, read
// xattrs and read small files ahead of the single tar writer, which emits
// members in walk order; a window of entries and a byte budget bound the
// memory. Events go to a [Reporter] (the same shape for backup, restore
// and verify); the package never prints.
package backup
