package backup

import (
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/nscap/nscap/userns"
)

// ErrHostScopedCaps is reported (inside a per-entry error) for a member
// whose security.capability the backup kept host-scoped (it carries the
// [HostScopedComment]) when [RestoreOptions.HostScope] is not set: the file
// is restored without that capability, because writing it verbatim gives
// the file capabilities honoured on the host, outside any container.
var ErrHostScopedCaps = errors.New("backup: host-scoped capability not restored (it would be honoured on the host; allow it with --host-scope, RestoreOptions.HostScope)")

// restoreMapping turns archive ids into the ids to write on the host.
//
// An archive's ids are either namespace-relative (its global comment
// records source maps, or it was made inside a container) or raw host ids
// of a source container (src maps given): the latter are first brought
// into that container, then everything goes out through the target maps
// (dst). Zero maps are identities.
type restoreMapping struct {
	srcUID, srcGID userns.Map
	dstUID, dstGID userns.Map
	// raw is set when neither the archive nor the options give source
	// maps: an id outside the target maps may then be a host id of a
	// plain tar archive, which needs source maps.
	raw bool
	// include is RestoreOptions.XattrsInclude.
	include []string
	// shownUID and shownGID are the target maps for messages.
	shownUID, shownGID userns.Map
}

// keepXattr tells whether the xattr name is restored (and verified):
// ACLs and caps always, then user.* or the include patterns.
func (m restoreMapping) keepXattr(name string) bool {
	if name == XattrCaps || IsACL(name) {
		return true
	}
	if m.include == nil {
		return strings.HasPrefix(name, "user.")
	}
	for _, p := range m.include {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// errRawHint is added to an unmapped id of a raw archive.
const errRawHint = "the archive records no source map: if it holds host ids, as tar run on the host makes, give --source-uidmap with the map of the container it comes from"

// newRestoreMapping checks the options against what the archive says and
// returns the translation to use.
func newRestoreMapping(info ArchiveInfo, o *RestoreOptions) (restoreMapping, error) {
	for _, p := range o.XattrsInclude {
		if _, err := path.Match(p, ""); err != nil {
			return restoreMapping{}, fmt.Errorf("xattrs include pattern %q: %w", p, err)
		}
	}
	m := restoreMapping{dstUID: o.UIDMap, dstGID: o.GIDMap, include: o.XattrsInclude, shownUID: o.shownUIDMap, shownGID: o.shownGIDMap}
	if m.shownUID.IsZero() {
		m.shownUID, m.shownGID = o.UIDMap, o.GIDMap
	}
	if info.HasMaps() {
		if o.UIDMap.IsZero() && !o.HostScope {
			return m, fmt.Errorf("%w (archive maps uid %s gid %s; give the target maps, or --host-scope)", ErrHostScope, info.UIDMap, info.GIDMap)
		}
		return m, nil
	}
	m.srcUID, m.srcGID = o.SourceUIDMap, o.SourceGIDMap
	m.raw = m.srcUID.IsZero() && !m.dstUID.IsZero()
	return m, nil
}

// ErrRawArchive is matched by a [*RawArchiveError].
var ErrRawArchive = errors.New("backup: archive of host ids without a source map")

// RawArchiveError ends a restore or verify of an archive that records no
// source map (tar run on the host, nscap backup without maps) when an
// owner is outside the target maps: its ids are host ids, not container
// ids, and every member would fail the same way, so the first one stops
// it with one error that shows the fix. It matches [ErrRawArchive] and
// [ErrUnmapped].
type RawArchiveError struct {
	Name     string     // the member, as stored
	UID, GID int        // its owner in the archive
	UIDMap   userns.Map // the target maps
	GIDMap   userns.Map
	// First is set when Name is the archive's first member: nothing was
	// restored.
	First bool
}

func (e *RawArchiveError) Error() string {
	fix := fmt.Sprintf("--source-uidmap 0:%d:65536", e.UID)
	if e.GID != e.UID {
		fix += fmt.Sprintf(" --source-gidmap 0:%d:65536", e.GID)
	}
	which := "member"
	if e.First {
		which = "first member"
	}
	return fmt.Sprintf("the archive holds host ids, not container ids: its %s %s is owned by %d:%d, outside the target map %s, and the archive records no source map "+
		"(tar run on the host makes such archives); give the map of the container it was made from, e.g. %s when %d is that container's root",
		which, e.Name, e.UID, e.GID, e.UIDMap, fix, e.UID)
}

// Is matches [ErrRawArchive] and [ErrUnmapped].
func (e *RawArchiveError) Is(target error) bool {
	return target == ErrRawArchive || target == ErrUnmapped
}

// rawOwner checks the owner of a member of a raw archive (see
// [RawArchiveError]); nil when the archive is not raw or the owner maps.
func (m restoreMapping) rawOwner(name string, uid, gid int, first bool) error {
	if !m.raw {
		return nil
	}
	if _, _, err := m.owner(uid, gid); err == nil || !errors.Is(err, ErrUnmapped) {
		return nil
	}
	return &RawArchiveError{Name: name, UID: uid, GID: gid, UIDMap: m.shownUID, GIDMap: m.shownGID, First: first}
}

// checkFirst checks the owner of the first member of ar, before anything
// is written (see [RawArchiveError]).
func (m restoreMapping) checkFirst(ar *archiveReader) error {
	if ar.pending == nil {
		return nil
	}
	return m.rawOwner(ar.pending.Name, ar.pending.Uid, ar.pending.Gid, true)
}

// hint adds errRawHint to an id of a raw archive outside the target maps.
func (m restoreMapping) hint(err error) error {
	if err != nil && m.raw && (errors.Is(err, ErrUnmapped) || errors.Is(err, ErrForeignCaps)) {
		return fmt.Errorf("%w; %s", err, errRawHint)
	}
	return err
}

// owner translates an archive owner.
func (m restoreMapping) owner(uid, gid int) (int, int, error) {
	if uid < 0 || uid > int(invalidID-1) || gid < 0 || gid > int(invalidID-1) {
		return 0, 0, fmt.Errorf("owner %d:%d is not a valid uid:gid", uid, gid)
	}
	u, err := toNs(m.srcUID, KindUID, uint32(uid))
	if err == nil {
		u, err = toHost(m.dstUID, KindUID, u)
	}
	if err != nil {
		return 0, 0, m.hint(err)
	}
	g, err := toNs(m.srcGID, KindGID, uint32(gid))
	if err == nil {
		g, err = toHost(m.dstGID, KindGID, g)
	}
	if err != nil {
		return 0, 0, m.hint(err)
	}
	return int(u), int(g), nil
}

// xattr translates the value of xattr name; hostScoped keeps caps as
// stored.
func (m restoreMapping) xattr(name string, val []byte, hostScoped bool) ([]byte, error) {
	switch {
	case name == XattrCaps:
		if hostScoped {
			// Still validated: the kernel would refuse a malformed one.
			return CapsFromArchive(val, userns.Map{})
		}
		v, err := CapsToArchive(val, m.srcUID)
		if err != nil {
			return nil, err
		}
		v, err = CapsFromArchive(v, m.dstUID)
		return v, m.hint(err)
	case IsACL(name):
		v, err := ACLToArchive(val, m.srcUID, m.srcGID)
		if err != nil {
			return nil, err
		}
		v, err = ACLFromArchive(v, m.dstUID, m.dstGID)
		return v, m.hint(err)
	}
	return val, nil
}

// isHostScoped reports whether the backup marked e's caps host-scoped.
func isHostScoped(e *archiveEntry) bool {
	return e.Header.PAXRecords[paxComment] == HostScopedComment
}

// entryXattrs returns the translated xattrs of e, caps apart. hostScoped
// reports caps kept verbatim because the entry carries the
// [HostScopedComment]. foreign is the error (matching [ErrForeignCaps])
// of caps whose rootid the target maps do not cover; caps is then the
// archive's value as stored (validated), for the caller's policy
// ([RestoreOptions.ForeignCaps]).
func (m restoreMapping) entryXattrs(e *archiveEntry) (xattrs []xattrKV, caps []byte, hostScoped bool, foreign error, skipped []string, err error) {
	hostScoped = isHostScoped(e)
	for _, n := range e.xattrNames() {
		if !m.keepXattr(n) {
			skipped = append(skipped, n)
			continue
		}
		v, err := m.xattr(n, e.Xattrs[n], hostScoped)
		if n == XattrCaps && errors.Is(err, ErrForeignCaps) {
			if v, verr := CapsFromArchive(e.Xattrs[n], userns.Map{}); verr == nil {
				caps, foreign = v, err
				continue
			}
		}
		if err != nil {
			return nil, nil, false, nil, nil, fmt.Errorf("xattr %s: %w", n, err)
		}
		if n == XattrCaps {
			caps = v
			continue
		}
		xattrs = append(xattrs, xattrKV{n, v})
	}
	return xattrs, caps, hostScoped && caps != nil, foreign, skipped, nil
}

type xattrKV struct {
	name  string
	value []byte
}

// Pax records in which bsdtar (and GNU tar --acls) store POSIX ACLs as
// text.
const (
	paxACLAccess  = "SCHILY.acl.access"
	paxACLDefault = "SCHILY.acl.default"
)

// aclFromText turns the text form of a POSIX.1e ACL, as bsdtar and GNU tar
// store it in SCHILY.acl.access / SCHILY.acl.default records, into the
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
func aclFromText(text string) (raw []byte, trivial bool, err error) {
	type ent struct {
		tag  uint16
		perm uint16
		id   uint32
	}
	var ents []ent
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
		bad := func(format string, args ...any) error {
			return fmt.Errorf("entry %d %q: %s", i+1, f, fmt.Sprintf(format, args...))
		}
		parts := strings.Split(f, ":")
		if parts[0] == "default" || parts[0] == "d" {
			return nil, false, bad("a default entry in an ACL record of its own type")
		}
		var e ent
		switch parts[0] {
		case "user", "u":
			e.tag = aclUserObj
		case "group", "g":
			e.tag = aclGroupObj
		case "mask", "m":
			e.tag = aclMask
		case "other", "o":
			e.tag = aclOther
		default:
			return nil, false, bad("unknown tag %q (want user, group, mask or other)", parts[0])
		}
		if (e.tag == aclMask || e.tag == aclOther) && len(parts) == 2 {
			parts = []string{parts[0], "", parts[1]} // "other:r-x"
		}
		if len(parts) != 3 && len(parts) != 4 {
			return nil, false, bad("want TAG:QUALIFIER:PERMS[:ID]")
		}
		qual, perms := parts[1], parts[2]
		if perms == "" {
			return nil, false, bad("empty permissions")
		}
		for _, c := range perms {
			switch c {
			case 'r':
				e.perm |= 4
			case 'w':
				e.perm |= 2
			case 'x':
				e.perm |= 1
			case '-':
			default:
				return nil, false, bad("permission %q (want r, w, x or -)", c)
			}
		}
		e.id = invalidID
		idText := ""
		if len(parts) == 4 {
			idText = parts[3]
		}
		switch {
		case qual == "" && idText == "":
		case qual == "":
			return nil, false, bad("an id without a qualifier")
		case e.tag == aclMask || e.tag == aclOther:
			return nil, false, bad("%s entries take no qualifier", parts[0])
		default:
			if e.tag == aclUserObj {
				e.tag = aclUser
			} else {
				e.tag = aclGroup
			}
			named = true
			if idText == "" {
				idText = qual
			}
			id, perr := strconv.ParseUint(idText, 10, 32)
			if perr != nil || uint32(id) == invalidID {
				if len(parts) == 4 {
					return nil, false, bad("id %q is not a numeric id", idText)
				}
				return nil, false, bad("names %q without a numeric id (names are not looked up: the host's user database says nothing about the archive's ids)", qual)
			}
			e.id = uint32(id)
		}
		key := [2]uint32{uint32(e.tag), e.id}
		if seen[key] {
			return nil, false, bad("duplicate entry")
		}
		seen[key] = true
		ents = append(ents, e)
	}
	for _, req := range []struct {
		tag  uint16
		name string
	}{{aclUserObj, "user::"}, {aclGroupObj, "group::"}, {aclOther, "other::"}} {
		if !seen[[2]uint32{uint32(req.tag), invalidID}] {
			return nil, false, fmt.Errorf("no %s entry", req.name)
		}
	}
	if named && !seen[[2]uint32{aclMask, invalidID}] {
		return nil, false, fmt.Errorf("named entries without a mask:: entry")
	}
	sort.Slice(ents, func(i, j int) bool {
		if ents[i].tag != ents[j].tag {
			return ents[i].tag < ents[j].tag
		}
		return ents[i].id < ents[j].id
	})
	raw = make([]byte, aclHeaderSize, aclHeaderSize+aclEntrySize*len(ents))
	binary.LittleEndian.PutUint32(raw, aclVersion)
	for _, e := range ents {
		raw = binary.LittleEndian.AppendUint16(raw, e.tag)
		raw = binary.LittleEndian.AppendUint16(raw, e.perm)
		raw = binary.LittleEndian.AppendUint32(raw, e.id)
	}
	return raw, len(ents) == 3 && !named, nil
}

// aclMode returns the permission bits the kernel gives a file whose access
// ACL is set to raw (posix_acl_update_mode): the owner bits from
// ACL_USER_OBJ, the group bits from ACL_MASK (ACL_GROUP_OBJ without a
// mask), the other bits from ACL_OTHER; setuid, setgid and sticky are
// kept. bsdtar stores the group-owner entry's bits in the mode field while
// the kernel (and GNU tar) show the mask's: both restore to the same
// mode. A value that does not parse leaves mode as it is.
func aclMode(raw []byte, mode uint32) uint32 {
	if len(raw) < aclHeaderSize || (len(raw)-aclHeaderSize)%aclEntrySize != 0 {
		return mode
	}
	var user, group, mask, other uint32
	hasMask := false
	for off := aclHeaderSize; off < len(raw); off += aclEntrySize {
		perm := uint32(binary.LittleEndian.Uint16(raw[off+2:])) & 7
		switch binary.LittleEndian.Uint16(raw[off:]) {
		case aclUserObj:
			user = perm
		case aclGroupObj:
			group = perm
		case aclMask:
			mask, hasMask = perm, true
		case aclOther:
			other = perm
		}
	}
	if hasMask {
		group = mask
	}
	return mode&^0o777 | user<<6 | group<<3 | other
}
