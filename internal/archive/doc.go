// Package archive defines what nscap's archiver and restorer share about a
// namespace-relative archive: what its pax global header records ([Meta],
// [Info]), the foreign-caps policy, the compressions, the pure
// translation of owners, capability rootids and POSIX ACL ids between the
// host and the archive ([CapsToArchive], [CapsFromArchive],
// [ACLToArchive], [ACLFromArchive]), and the items, reports and errors of
// a run. It never touches the system but to compress. Package backup
// re-exports it.
package archive
