package tarfmt

import "fmt"

// Pax record names and comment words of the archives nscap reads and
// writes.
const (
	// SchilyXattrPrefix is the pax record prefix of an xattr whose value
	// is stored raw: SCHILY.xattr.NAME, the form GNU tar --xattrs, bsdtar
	// and nscap all read and write.
	SchilyXattrPrefix = "SCHILY.xattr."
	// LibarchiveXattrPrefix is the pax record prefix of an xattr as
	// bsdtar writes it besides the SCHILY one: LIBARCHIVE.xattr.NAME
	// with NAME %-escaped and the value in base64.
	LibarchiveXattrPrefix = "LIBARCHIVE.xattr."
	// CommentRecord is the standard pax "comment" keyword, which every
	// reader ignores silently (GNU tar warns on unknown keywords such as
	// LIBARCHIVE.*). nscap stores its [Comment] in the global header's
	// and [HostScopedComment] in a member's.
	CommentRecord = "comment"
	// CommentMagic is the first word of nscap's global comment; the words
	// after it are key=value pairs (see [Comment.String]).
	CommentMagic = "nscap-backup/1"
	// IdentityMap is the comment's text for a zero map: the archive holds
	// raw host ids.
	IdentityMap = "identity"
	// HostScopedComment is the member comment marking a member whose
	// security.capability was kept host-scoped (raw, as the host reads
	// it) in an archive whose other caps are namespace-relative: a
	// restore writes it verbatim, an audit does not take its rootid as
	// relative to the archive's map.
	HostScopedComment = "nscap: host-scoped security.capability"
)

// BlockSize is the size of a tar block: headers and data are padded to it.
const BlockSize = 512

// SetChecksum recomputes the header checksum of a tar block, as the
// ustar spec says: the sum of its bytes with the field itself as spaces,
// six octal digits, a NUL and a space.
func SetChecksum(b []byte) {
	copy(b[148:156], "        ")
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
}
