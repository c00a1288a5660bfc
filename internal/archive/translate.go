package archive

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// Names of the extended attributes whose values carry ids.
const (
	XattrCaps       = xattrfmt.CapsName
	XattrACLAccess  = xattrfmt.ACLAccessName
	XattrACLDefault = xattrfmt.ACLDefaultName
)

// Sentinel errors of the translation functions. Errors wrap one of them, so
// callers branch with [errors.Is]; [*IDError] and [*MalformedError] carry
// the details for [errors.As].
var (
	// ErrUnmapped reports an owner or ACL id outside the map.
	ErrUnmapped = errors.New("backup: id outside the map")
	// ErrForeignCaps reports a security.capability whose rootid is outside
	// the uid map: the caps belong to no namespace the map describes.
	ErrForeignCaps = errors.New("backup: capability of a namespace outside the map")
	// ErrMalformed reports an xattr value that breaks its format.
	ErrMalformed = errors.New("backup: malformed xattr value")
)

// IDKind names which id an [IDError] is about.
type IDKind string

// Kinds of ids that are translated.
const (
	KindUID      IDKind = "uid"
	KindGID      IDKind = "gid"
	KindRootID   IDKind = "rootid"
	KindACLUser  IDKind = "acl user"
	KindACLGroup IDKind = "acl group"
)

// IDError reports an id that a map does not cover. It matches
// [ErrForeignCaps] when Kind is [KindRootID], else [ErrUnmapped], and it
// unwraps to the [*userns.UnmappedError] of the lookup.
type IDError struct {
	Kind IDKind
	ID   uint32 // the id that has no mapping
	Host bool   // ID is a host id (backup direction), else a namespace id (restore)
	Err  error  // the userns error
}

// Error implements error.
func (e *IDError) Error() string {
	side := "container"
	if e.Host {
		side = "host"
	}
	m := ""
	var ue *userns.UnmappedError
	if errors.As(e.Err, &ue) {
		m = ue.Map.String()
	}
	return fmt.Sprintf("%s %s %d outside the map %s", side, e.Kind, e.ID, m)
}

// Unwrap returns the map lookup error.
func (e *IDError) Unwrap() error { return e.Err }

// Is matches [ErrForeignCaps] for a rootid and [ErrUnmapped] for the rest.
func (e *IDError) Is(target error) bool {
	if e.Kind == KindRootID {
		return target == ErrForeignCaps
	}
	return target == ErrUnmapped
}

// MalformedError reports an xattr value that breaks its format. It matches
// [ErrMalformed].
type MalformedError struct {
	Name   string // xattr name
	Reason string // the rule broken
}

// Error implements error.
func (e *MalformedError) Error() string {
	return fmt.Sprintf("malformed %s: %s", e.Name, e.Reason)
}

// Is reports whether target is [ErrMalformed].
func (e *MalformedError) Is(target error) bool { return target == ErrMalformed }

func malformed(name, format string, args ...any) error {
	return &MalformedError{Name: name, Reason: fmt.Sprintf(format, args...)}
}

// IDToArchive maps a host id into the namespace; the zero map is the identity.
func IDToArchive(m userns.Map, kind IDKind, id uint32) (uint32, error) {
	if m.IsZero() {
		return id, nil
	}
	ns, err := m.ToNs(id)
	if err != nil {
		return 0, &IDError{Kind: kind, ID: id, Host: true, Err: err}
	}
	return ns, nil
}

// IDFromArchive maps a namespace id to the host; the zero map is the identity.
func IDFromArchive(m userns.Map, kind IDKind, id uint32) (uint32, error) {
	if m.IsZero() {
		return id, nil
	}
	h, err := m.ToHost(id)
	if err != nil {
		return 0, &IDError{Kind: kind, ID: id, Err: err}
	}
	return h, nil
}

// CapsRoot decodes raw ([xattrfmt.Decode]: the magic, flags and size
// rules), checks it against the further rules the kernel's validheader
// applies to a write (revision 2 or 3, a valid rootid) and returns its
// root: 0 for revision 2, the rootid for revision 3.
func CapsRoot(raw []byte) (root uint32, err error) {
	c, err := xattrfmt.Decode(raw)
	if err != nil {
		reason := err.Error()
		if de, ok := errors.AsType[*xattrfmt.DecodeError](err); ok {
			reason = de.Msg // without the package's prefix
		}
		return 0, malformed(XattrCaps, "%s", reason)
	}
	switch {
	case c.Revision == xattrfmt.Revision1:
		return 0, malformed(XattrCaps, "revision 1: the kernel accepts only revisions 2 and 3")
	case c.RootID == xattrfmt.ACLUndefinedID:
		return 0, malformed(XattrCaps, "rootid %d is not a valid uid", c.RootID)
	}
	return c.RootID, nil
}

// CapsWithRoot returns raw, a value CapsRoot accepts, under a new root
// ([xattrfmt.FileCaps.WithRoot]): revision 2 for root 0, revision 3 with
// the rootid otherwise, the capability words as they are. It returns nil
// for a value CapsRoot refuses.
func CapsWithRoot(raw []byte, root uint32) []byte {
	c, err := xattrfmt.Decode(raw)
	if err != nil {
		return nil
	}
	out, err := xattrfmt.Encode(c.WithRoot(root))
	if err != nil {
		return nil // unreachable: revision 2 or 3 always encode
	}
	return out
}

// CapsToArchive translates a security.capability value as the host reads
// it into the namespace-relative value stored in an archive: what getxattr
// returns inside the container whose uid map is uidmap. A rootid that is
// the container root becomes revision 2; the root of a nested namespace
// becomes revision 3 with its rootid as the container sees it.
//
// A rootid outside uidmap (including 0, the rootid of a host-scoped
// revision-2 value, when the map does not cover host uid 0) gives an
// [*IDError] of kind [KindRootID] matching [ErrForeignCaps]: those caps
// cannot be expressed relative to the container, and what to do with them
// is the caller's policy ([ForeignCaps]). A value breaking the kernel's
// format rules gives a [*MalformedError]. The zero map is the identity:
// the value is returned unchanged (after validation).
//
// CapsToArchive is pure: it never touches the system.
func CapsToArchive(raw []byte, uidmap userns.Map) ([]byte, error) {
	root, err := CapsRoot(raw)
	if err != nil {
		return nil, err
	}
	if uidmap.IsZero() {
		return append([]byte(nil), raw...), nil
	}
	ns, err := IDToArchive(uidmap, KindRootID, root)
	if err != nil {
		return nil, err
	}
	return CapsWithRoot(raw, ns), nil
}

// CapsFromArchive is the inverse of [CapsToArchive]: it translates an
// archived, namespace-relative value into the value to write on the host
// for a container whose uid map is uidmap. Revision 2 (the container root)
// becomes revision 3 with the container root's host uid (or revision 2 if
// that is host uid 0); revision 3 with rootid R becomes revision 3 with R's
// host uid. A rootid outside uidmap gives an [*IDError] matching
// [ErrForeignCaps]. The zero map is the identity.
//
// CapsFromArchive is pure: it never touches the system.
func CapsFromArchive(raw []byte, uidmap userns.Map) ([]byte, error) {
	root, err := CapsRoot(raw)
	if err != nil {
		return nil, err
	}
	if uidmap.IsZero() {
		return append([]byte(nil), raw...), nil
	}
	host, err := IDFromArchive(uidmap, KindRootID, root)
	if err != nil {
		return nil, err
	}
	return CapsWithRoot(raw, host), nil
}

// TranslateACL validates a POSIX ACL xattr value and maps the ids of its
// ACL_USER and ACL_GROUP entries with the given functions.
func TranslateACL(name string, raw []byte, uid, gid func(uint32) (uint32, error)) ([]byte, error) {
	if len(raw) < xattrfmt.ACLHeaderSize {
		return nil, malformed(name, "size %d, shorter than the 4-byte header", len(raw))
	}
	if v := binary.LittleEndian.Uint32(raw); v != xattrfmt.ACLVersion {
		return nil, malformed(name, "version %d, want %d", v, xattrfmt.ACLVersion)
	}
	if (len(raw)-xattrfmt.ACLHeaderSize)%xattrfmt.ACLEntrySize != 0 {
		return nil, malformed(name, "size %d is not a 4-byte header plus 8-byte entries", len(raw))
	}
	// Validate every tag before translating any id, so that a malformed
	// value is reported as such whatever its ids.
	for off := xattrfmt.ACLHeaderSize; off < len(raw); off += xattrfmt.ACLEntrySize {
		switch tag := binary.LittleEndian.Uint16(raw[off:]); tag {
		case xattrfmt.ACLUser, xattrfmt.ACLGroup, xattrfmt.ACLUserObj, xattrfmt.ACLGroupObj, xattrfmt.ACLMask, xattrfmt.ACLOther:
		default:
			return nil, malformed(name, "entry %d: unknown tag %#x", (off-xattrfmt.ACLHeaderSize)/xattrfmt.ACLEntrySize, tag)
		}
	}
	out := append([]byte(nil), raw...)
	for off := xattrfmt.ACLHeaderSize; off < len(out); off += xattrfmt.ACLEntrySize {
		var mapID func(uint32) (uint32, error)
		switch binary.LittleEndian.Uint16(out[off:]) {
		case xattrfmt.ACLUser:
			mapID = uid
		case xattrfmt.ACLGroup:
			mapID = gid
		default:
			continue // no id: the kernel ignores the field
		}
		id := binary.LittleEndian.Uint32(out[off+4:])
		nid, err := mapID(id)
		if err != nil {
			return nil, fmt.Errorf("%s entry %d: %w", name, (off-xattrfmt.ACLHeaderSize)/xattrfmt.ACLEntrySize, err)
		}
		binary.LittleEndian.PutUint32(out[off+4:], nid)
	}
	return out, nil
}

// ACLToArchive translates a POSIX ACL xattr value (system.posix_acl_access
// or system.posix_acl_default) as the host reads it into the container's
// view: the ids of ACL_USER entries through uidmap, of ACL_GROUP entries
// through gidmap (host to container). The format is little-endian: a u32
// version 2, then entries {u16 tag, u16 perm, u32 id}. An id outside its
// map gives an [*IDError] matching [ErrUnmapped]; a malformed value a
// [*MalformedError]. A zero map is the identity for its ids.
//
// ACLToArchive is pure: it never touches the system.
func ACLToArchive(raw []byte, uidmap, gidmap userns.Map) ([]byte, error) {
	return TranslateACL("posix acl", raw,
		func(id uint32) (uint32, error) { return IDToArchive(uidmap, KindACLUser, id) },
		func(id uint32) (uint32, error) { return IDToArchive(gidmap, KindACLGroup, id) })
}

// ACLFromArchive is the inverse of [ACLToArchive]: container ids to host
// ids.
//
// ACLFromArchive is pure: it never touches the system.
func ACLFromArchive(raw []byte, uidmap, gidmap userns.Map) ([]byte, error) {
	return TranslateACL("posix acl", raw,
		func(id uint32) (uint32, error) { return IDFromArchive(uidmap, KindACLUser, id) },
		func(id uint32) (uint32, error) { return IDFromArchive(gidmap, KindACLGroup, id) })
}

// IsACL reports whether name is one of the POSIX ACL xattrs whose ids
// [ACLToArchive] translates.
func IsACL(name string) bool { return name == XattrACLAccess || name == XattrACLDefault }
