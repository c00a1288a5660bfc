package xattrfmt

// CapsName is the name of the extended attribute holding file
// capabilities, whose value [Decode] parses.
const CapsName = "security.capability" // XATTR_NAME_CAPS: struct vfs_cap_data / vfs_ns_cap_data

// Revision is the revision byte of a security.capability value (the high
// byte of magic_etc).
type Revision uint8

// Revisions of struct vfs_cap_data / vfs_ns_cap_data.
const (
	Revision1 Revision = 1 // VFS_CAP_REVISION_1: 12 bytes, caps 0-31 only
	Revision2 Revision = 2 // VFS_CAP_REVISION_2: 20 bytes, host-scoped
	Revision3 Revision = 3 // VFS_CAP_REVISION_3: 24 bytes, with a rootid
)

// Sizes of the encoded forms (XATTR_CAPS_SZ_*).
const (
	SizeV1 = 12 // XATTR_CAPS_SZ_1
	SizeV2 = 20 // XATTR_CAPS_SZ_2
	SizeV3 = 24 // XATTR_CAPS_SZ_3
)

// CapSet is a set of capabilities: bit n is capability n. All 64 positions
// are kept, including those above [LastCap] that the kernel stores verbatim.
type CapSet uint64

// Caps is a capability state as libcap's cap_t holds it: three sets. It is
// what the text form describes ([ParseText], [Caps.String]).
type Caps struct {
	Effective   CapSet
	Permitted   CapSet
	Inheritable CapSet
}

// FileCaps is the content of a security.capability xattr.
//
// The rootid is present exactly when Revision is [Revision3]: a revision-3
// value with rootid 0 is distinct from a revision-2 value in raw bytes (as
// stored in archives), though the kernel honours both alike.
type FileCaps struct {
	Revision    Revision
	Effective   bool // VFS_CAP_FLAGS_EFFECTIVE
	Permitted   CapSet
	Inheritable CapSet
	RootID      uint32 // meaningful only when Revision == Revision3
}
