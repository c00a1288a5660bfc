// Package xattrfmt encodes and decodes the security.capability extended
// attribute (Linux file capabilities) and its libcap text form. It is a
// pure codec: no syscalls, stdlib only, builds on any GOOS.
//
// # Binary format
//
// The format is the UAPI's struct vfs_cap_data / struct vfs_ns_cap_data
// (include/uapi/linux/capability.h). Every field is a little-endian u32:
// magic_etc, then the (permitted, inheritable) word pairs, interleaved
// (permitted[0], inheritable[0], permitted[1], inheritable[1]), then, for
// revision 3 only, the rootid. The high byte of magic_etc is the revision;
// of its low 24 bits only VFS_CAP_FLAGS_EFFECTIVE (0x000001) is defined.
//
//	revision 1  12 bytes  capabilities 0-31 only      (honoured at exec, refused by getxattr/setxattr)
//	revision 2  20 bytes  capabilities 0-63            (host-scoped)
//	revision 3  24 bytes  capabilities 0-63 + rootid   (honoured in the user namespace whose root is rootid)
//
// Invariants:
//
//   - [Decode] accepts exactly the values of the three revisions with their
//     exact sizes and no stray flags, and returns a [*DecodeError] naming
//     the first rule broken otherwise (see [Decode] for the order);
//   - [Encode] writes exactly the bytes the kernel and libcap write, in the
//     revision given (it never picks one itself), so Encode(Decode(b)) == b
//     and Decode(Encode(c)) == c;
//   - capability bits above [LastCap] are kept verbatim both ways, as the
//     kernel stores them (exec ignores them);
//   - a revision-3 value keeps its rootid even when it is 0: raw v3 with
//     rootid 0 and v2 are different bytes, though the kernel treats them
//     alike (and getxattr shows the former as the latter).
//
// # Text format
//
// [ParseText] and [Caps.String] are exact ports of libcap 2.66's C
// cap_from_text and cap_to_text (libcap/cap_text.c), with the names known
// to a kernel whose CAP_LAST_CAP is [LastCap]. They are checked against the
// real libcap: a golden file produced by the C functions, and the real
// setcap and getcap as root. [FileCaps.String] is what getcap prints for a
// file; [ParseFileText] is what setcap writes for a text, including its
// rule that a file's effective set be empty or cover permitted and
// inheritable ([ErrEffective]).
package xattrfmt
