package xattrfmt

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Names of the POSIX ACL extended attributes.
const (
	ACLAccessName  = "system.posix_acl_access"  // POSIX_ACL_XATTR_ACCESS
	ACLDefaultName = "system.posix_acl_default" // POSIX_ACL_XATTR_DEFAULT
)

// The POSIX ACL xattr format (include/uapi/linux/posix_acl_xattr.h),
// little-endian: a u32 version, then entries {u16 tag, u16 perm, u32 id}.
const (
	ACLVersion     = 2          // POSIX_ACL_XATTR_VERSION
	ACLHeaderSize  = 4          // struct posix_acl_xattr_header
	ACLEntrySize   = 8          // struct posix_acl_xattr_entry
	ACLUserObj     = 0x01       // ACL_USER_OBJ
	ACLUser        = 0x02       // ACL_USER
	ACLGroupObj    = 0x04       // ACL_GROUP_OBJ
	ACLGroup       = 0x08       // ACL_GROUP
	ACLMask        = 0x10       // ACL_MASK
	ACLOther       = 0x20       // ACL_OTHER
	ACLUndefinedID = ^uint32(0) // ACL_UNDEFINED_ID, (uid_t)-1
)

// aclEntry is one decoded entry of a POSIX ACL.
type aclEntry struct {
	tag  uint16
	perm uint16
	id   uint32
}

// ParseACLText turns the text form of a POSIX.1e ACL, as bsdtar and GNU
// tar store it in SCHILY.acl.access / SCHILY.acl.default records, into the
// value of the system.posix_acl_* xattr (little-endian, version 2, entries
// sorted as the kernel requires: ACL_USER_OBJ, ACL_USER by id,
// ACL_GROUP_OBJ, ACL_GROUP by id, ACL_MASK, ACL_OTHER).
//
// Entries are separated by commas or newlines; each is
// TAG:QUALIFIER:PERMS[:ID] with TAG user/u, group/g, mask/m or other/o,
// PERMS made of r, w, x and -, and an optional "#" comment. bsdtar writes
// "user:NAME:r--:ID" (libarchive's ARCHIVE_ENTRY_ACL_STYLE_EXTRA_ID): the
// numeric ID is used, never the name. A named entry without an ID is
// refused unless its qualifier is itself numeric: names would be looked up
// in this host's user database, which says nothing about a container's
// ids. The ids are returned as stored; the caller translates them.
//
// trivial reports an ACL made only of the three base entries (it says no
// more than the mode bits).
func ParseACLText(text string) (raw []byte, trivial bool, err error) {
	var ents []aclEntry
	seen := map[[2]uint32]bool{}
	named := false
	fields := strings.FieldsFunc(text, func(r rune) bool { return r == ',' || r == '\n' })
	for i, f := range fields {
		if c := strings.IndexByte(f, '#'); c >= 0 {
			f = f[:c]
		}
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		e, err := parseACLEntry(f)
		if err != nil {
			return nil, false, fmt.Errorf("entry %d %q: %w", i+1, f, err)
		}
		named = named || e.tag == ACLUser || e.tag == ACLGroup
		key := [2]uint32{uint32(e.tag), e.id}
		if seen[key] {
			return nil, false, fmt.Errorf("entry %d %q: duplicate entry", i+1, f)
		}
		seen[key] = true
		ents = append(ents, e)
	}
	for _, req := range []struct {
		tag  uint16
		name string
	}{{ACLUserObj, "user::"}, {ACLGroupObj, "group::"}, {ACLOther, "other::"}} {
		if !seen[[2]uint32{uint32(req.tag), ACLUndefinedID}] {
			return nil, false, fmt.Errorf("no %s entry", req.name)
		}
	}
	if named && !seen[[2]uint32{ACLMask, ACLUndefinedID}] {
		return nil, false, fmt.Errorf("named entries without a mask:: entry")
	}
	return encodeACL(ents), len(ents) == 3 && !named, nil
}

// parseACLEntry decodes one TAG:QUALIFIER:PERMS[:ID] entry.
func parseACLEntry(f string) (aclEntry, error) {
	parts := strings.Split(f, ":")
	if parts[0] == "default" || parts[0] == "d" {
		return aclEntry{}, fmt.Errorf("a default entry in an ACL record of its own type")
	}
	e := aclEntry{id: ACLUndefinedID}
	switch parts[0] {
	case "user", "u":
		e.tag = ACLUserObj
	case "group", "g":
		e.tag = ACLGroupObj
	case "mask", "m":
		e.tag = ACLMask
	case "other", "o":
		e.tag = ACLOther
	default:
		return e, fmt.Errorf("unknown tag %q (want user, group, mask or other)", parts[0])
	}
	if (e.tag == ACLMask || e.tag == ACLOther) && len(parts) == 2 {
		parts = []string{parts[0], "", parts[1]} // "other:r-x"
	}
	if len(parts) != 3 && len(parts) != 4 {
		return e, fmt.Errorf("want TAG:QUALIFIER:PERMS[:ID]")
	}
	qual, perms := parts[1], parts[2]
	var err error
	if e.perm, err = parseACLPerms(perms); err != nil {
		return e, err
	}
	idText := ""
	if len(parts) == 4 {
		idText = parts[3]
	}
	switch {
	case qual == "" && idText == "":
		return e, nil
	case qual == "":
		return e, fmt.Errorf("an id without a qualifier")
	case e.tag == ACLMask || e.tag == ACLOther:
		return e, fmt.Errorf("%s entries take no qualifier", parts[0])
	}
	if e.tag == ACLUserObj {
		e.tag = ACLUser
	} else {
		e.tag = ACLGroup
	}
	if idText == "" {
		idText = qual
	}
	id, perr := strconv.ParseUint(idText, 10, 32)
	if perr != nil || uint32(id) == ACLUndefinedID {
		if len(parts) == 4 {
			return e, fmt.Errorf("id %q is not a numeric id", idText)
		}
		return e, fmt.Errorf("names %q without a numeric id (names are not looked up: the host's user database says nothing about the archive's ids)", qual)
	}
	e.id = uint32(id)
	return e, nil
}

// parseACLPerms decodes the PERMS field: r, w, x and -.
func parseACLPerms(perms string) (uint16, error) {
	if perms == "" {
		return 0, fmt.Errorf("empty permissions")
	}
	var p uint16
	for _, c := range perms {
		switch c {
		case 'r':
			p |= 4
		case 'w':
			p |= 2
		case 'x':
			p |= 1
		case '-':
		default:
			return 0, fmt.Errorf("permission %q (want r, w, x or -)", c)
		}
	}
	return p, nil
}

// encodeACL sorts ents as the kernel requires and encodes them.
func encodeACL(ents []aclEntry) []byte {
	sort.Slice(ents, func(i, j int) bool {
		if ents[i].tag != ents[j].tag {
			return ents[i].tag < ents[j].tag
		}
		return ents[i].id < ents[j].id
	})
	raw := make([]byte, ACLHeaderSize, ACLHeaderSize+ACLEntrySize*len(ents))
	binary.LittleEndian.PutUint32(raw, ACLVersion)
	for _, e := range ents {
		raw = binary.LittleEndian.AppendUint16(raw, e.tag)
		raw = binary.LittleEndian.AppendUint16(raw, e.perm)
		raw = binary.LittleEndian.AppendUint32(raw, e.id)
	}
	return raw
}

// ACLMode returns the permission bits the kernel gives a file whose access
// ACL is set to raw (posix_acl_update_mode): the owner bits from
// ACL_USER_OBJ, the group bits from ACL_MASK (ACL_GROUP_OBJ without a
// mask), the other bits from ACL_OTHER; setuid, setgid and sticky are
// kept. bsdtar stores the group-owner entry's bits in the mode field while
// the kernel (and GNU tar) show the mask's: both restore to the same
// mode. A value that does not parse leaves mode as it is.
func ACLMode(raw []byte, mode uint32) uint32 {
	if len(raw) < ACLHeaderSize || (len(raw)-ACLHeaderSize)%ACLEntrySize != 0 {
		return mode
	}
	var user, group, mask, other uint32
	hasMask := false
	for off := ACLHeaderSize; off < len(raw); off += ACLEntrySize {
		perm := uint32(binary.LittleEndian.Uint16(raw[off+2:])) & 7
		switch binary.LittleEndian.Uint16(raw[off:]) {
		case ACLUserObj:
			user = perm
		case ACLGroupObj:
			group = perm
		case ACLMask:
			mask, hasMask = perm, true
		case ACLOther:
			other = perm
		}
	}
	if hasMask {
		group = mask
	}
	return mode&^0o777 | user<<6 | group<<3 | other
}

// ACLText returns the text form of a valid POSIX ACL xattr value (as
// backup.ACLToArchive returns it), as bsdtar writes it in SCHILY.acl.access
// and SCHILY.acl.default records and GNU tar --acls and bsdtar read it:
// comma-separated TAG:QUALIFIER:PERMS[:ID] entries. Named entries carry
// the numeric id as their qualifier and as the ID field: a container's
// ids have no names on the host (GNU tar gives the qualifier to
// acl_from_text, bsdtar and nscap take the ID).
func ACLText(raw []byte) string {
	var b strings.Builder
	for off := ACLHeaderSize; off+ACLEntrySize <= len(raw); off += ACLEntrySize {
		tag := binary.LittleEndian.Uint16(raw[off:])
		perm := binary.LittleEndian.Uint16(raw[off+2:])
		id := binary.LittleEndian.Uint32(raw[off+4:])
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		qual := ""
		switch tag {
		case ACLUserObj, ACLUser:
			b.WriteString("user:")
		case ACLGroupObj, ACLGroup:
			b.WriteString("group:")
		case ACLMask:
			b.WriteString("mask:")
		case ACLOther:
			b.WriteString("other:")
		}
		if tag == ACLUser || tag == ACLGroup {
			qual = strconv.FormatUint(uint64(id), 10)
		}
		b.WriteString(qual)
		b.WriteByte(':')
		for i, c := range "rwx" {
			if perm&(4>>i) != 0 {
				b.WriteRune(c)
			} else {
				b.WriteByte('-')
			}
		}
		if qual != "" {
			b.WriteByte(':')
			b.WriteString(qual)
		}
	}
	return b.String()
}
