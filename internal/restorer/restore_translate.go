package restorer

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// ErrHostScopedCaps is reported (inside a per-entry error) for a member
// whose security.capability the backup kept host-scoped (it carries the
// [archive.HostScopedComment]) when [RestoreOptions.HostScope] is not set: the file
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
	if name == archive.XattrCaps || archive.IsACL(name) {
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
func newRestoreMapping(ar *tarfmt.Reader, o *RestoreOptions) (restoreMapping, error) {
	info, err := archive.ParseInfo(ar.Comment())
	if err != nil {
		return restoreMapping{}, err
	}
	for _, p := range o.XattrsInclude {
		if _, err := path.Match(p, ""); err != nil {
			return restoreMapping{}, fmt.Errorf("xattrs include pattern %q: %w", p, err)
		}
	}
	m := restoreMapping{dstUID: o.UIDMap, dstGID: o.GIDMap, include: o.XattrsInclude, shownUID: o.ShownUIDMap, shownGID: o.ShownGIDMap}
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
// [archive.ErrUnmapped].
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

// Is matches [ErrRawArchive] and [archive.ErrUnmapped].
func (e *RawArchiveError) Is(target error) bool {
	return target == ErrRawArchive || target == archive.ErrUnmapped
}

// rawOwner checks the owner of a member of a raw archive (see
// [RawArchiveError]); nil when the archive is not raw or the owner maps.
func (m restoreMapping) rawOwner(name string, uid, gid int, first bool) error {
	if !m.raw {
		return nil
	}
	if _, _, err := m.owner(uid, gid); err == nil || !errors.Is(err, archive.ErrUnmapped) {
		return nil
	}
	return &RawArchiveError{Name: name, UID: uid, GID: gid, UIDMap: m.shownUID, GIDMap: m.shownGID, First: first}
}

// checkFirst checks the owner of the first member of ar, before anything
// is written (see [RawArchiveError]).
func (m restoreMapping) checkFirst(ar *tarfmt.Reader) error {
	if ar.Pending() == nil {
		return nil
	}
	return m.rawOwner(ar.Pending().Name, ar.Pending().Uid, ar.Pending().Gid, true)
}

// hint adds errRawHint to an id of a raw archive outside the target maps.
func (m restoreMapping) hint(err error) error {
	if err != nil && m.raw && (errors.Is(err, archive.ErrUnmapped) || errors.Is(err, archive.ErrForeignCaps)) {
		return fmt.Errorf("%w; %s", err, errRawHint)
	}
	return err
}

// owner translates an archive owner.
func (m restoreMapping) owner(uid, gid int) (int, int, error) {
	if uid < 0 || uid > int(xattrfmt.ACLUndefinedID-1) || gid < 0 || gid > int(xattrfmt.ACLUndefinedID-1) {
		return 0, 0, fmt.Errorf("owner %d:%d is not a valid uid:gid", uid, gid)
	}
	u, err := archive.IDToArchive(m.srcUID, archive.KindUID, uint32(uid))
	if err == nil {
		u, err = archive.IDFromArchive(m.dstUID, archive.KindUID, u)
	}
	if err != nil {
		return 0, 0, m.hint(err)
	}
	g, err := archive.IDToArchive(m.srcGID, archive.KindGID, uint32(gid))
	if err == nil {
		g, err = archive.IDFromArchive(m.dstGID, archive.KindGID, g)
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
	case name == archive.XattrCaps:
		if hostScoped {
			// Still validated: the kernel would refuse a malformed one.
			return archive.CapsFromArchive(val, userns.Map{})
		}
		v, err := archive.CapsToArchive(val, m.srcUID)
		if err != nil {
			return nil, err
		}
		v, err = archive.CapsFromArchive(v, m.dstUID)
		return v, m.hint(err)
	case archive.IsACL(name):
		v, err := archive.ACLToArchive(val, m.srcUID, m.srcGID)
		if err != nil {
			return nil, err
		}
		v, err = archive.ACLFromArchive(v, m.dstUID, m.dstGID)
		return v, m.hint(err)
	}
	return val, nil
}

// isHostScoped reports whether the backup marked e's caps host-scoped.
func isHostScoped(e *tarfmt.Entry) bool {
	return e.Header.PAXRecords[tarfmt.CommentRecord] == archive.HostScopedComment
}

// entryXattrs returns the translated xattrs of e, caps apart. hostScoped
// reports caps kept verbatim because the entry carries the
// [archive.HostScopedComment]. foreign is the error (matching [archive.ErrForeignCaps])
// of caps whose rootid the target maps do not cover; caps is then the
// archive's value as stored (validated), for the caller's policy
// ([RestoreOptions.ForeignCaps]).
func (m restoreMapping) entryXattrs(e *tarfmt.Entry) (xattrs []xattrKV, caps []byte, hostScoped bool, foreign error, skipped []string, err error) {
	hostScoped = isHostScoped(e)
	for _, n := range e.XattrNames() {
		if !m.keepXattr(n) {
			skipped = append(skipped, n)
			continue
		}
		v, err := m.xattr(n, e.Xattrs[n], hostScoped)
		if n == archive.XattrCaps && errors.Is(err, archive.ErrForeignCaps) {
			if v, verr := archive.CapsFromArchive(e.Xattrs[n], userns.Map{}); verr == nil {
				caps, foreign = v, err
				continue
			}
		}
		if err != nil {
			return nil, nil, false, nil, nil, fmt.Errorf("xattr %s: %w", n, err)
		}
		if n == archive.XattrCaps {
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

// openArchive opens the archive in r for a restore, a verify or a listing
// under ro: it reads the global header, checks the first member of a raw
// archive (see [RawArchiveError]) and compiles the selected paths. The
// caller closes the reader.
func openArchive(r io.Reader, ro *RestoreOptions, paths []string) (*tarfmt.Reader, restoreMapping, *selection, error) {
	ar, err := tarfmt.NewReader(r)
	if err != nil {
		return nil, restoreMapping{}, nil, err
	}
	m, err := newRestoreMapping(ar, ro)
	if err == nil {
		err = m.checkFirst(ar)
	}
	var sel *selection
	if err == nil {
		sel, err = newSelection(paths)
	}
	if err != nil {
		ar.Close()
		return nil, restoreMapping{}, nil, err
	}
	return ar, m, sel, nil
}
