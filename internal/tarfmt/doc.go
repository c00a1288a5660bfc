// Package tarfmt holds the tar/pax format details shared by backup
// (restore, verify) and fcaps (archive audit), so that both read an
// archive the same way:
//
//   - the compression of an archive, sniffed from its first bytes
//     ([Decompress], with bounded zstd memory), and whether a file starts
//     an archive at all ([Sniff]);
//   - the pax records that carry extended attributes: SCHILY.xattr.NAME
//     (GNU tar --xattrs, bsdtar, nscap; raw value) and
//     LIBARCHIVE.xattr.NAME (bsdtar; %-escaped name, base64 value),
//     decoded by [Xattrs] and [Xattr];
//   - nscap's pax global "comment" record, which records the tool, the
//     source id maps and the foreign-caps policy of a backup
//     ([Comment], [ParseComment]), and the member comment that marks a
//     capability kept host-scoped ([HostScopedComment]).
//
// The package is pure: it decodes bytes and strings and never touches the
// system.
package tarfmt
