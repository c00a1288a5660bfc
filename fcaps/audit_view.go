package fcaps

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// honouredIn returns the live namespaces honouring caps with root kuid r:
// the namespaces whose root is r and their descendants, by inode.
func (a *Auditor) honouredIn(r uint32) []userns.NSRef {
	seen := map[userns.NSRef]bool{}
	var out []userns.NSRef
	var add func(n *userns.Node)
	add = func(n *userns.Node) {
		if seen[n.NSRef] {
			return
		}
		seen[n.NSRef] = true
		out = append(out, n.NSRef)
		for _, c := range n.Children {
			add(c)
		}
	}
	for _, n := range a.roots[r] {
		add(n)
	}
	slices.SortFunc(out, func(x, y userns.NSRef) int {
		if x.Inode != y.Inode {
			return cmp.Compare(x.Inode, y.Inode)
		}
		return cmp.Compare(x.Dev, y.Dev)
	})
	return out
}

// subRange returns the subordinate range holding uid.
func (a *Auditor) subRange(uid uint32) (userns.SubIDRange, bool) {
	for _, r := range a.opts.SubUIDs {
		if uid >= r.Start && uint64(uid) < uint64(r.Start)+uint64(r.Count) {
			return r, true
		}
	}
	return userns.SubIDRange{}, false
}

// view is the container an entry is taken to lie in.
type view struct {
	// in: the entry lies in a container (rootfs or archive).
	in bool
	// why says why, for the messages.
	why string
	// uid and gid are the container's maps (host ids outside), zero when
	// unknown (an archive marked host-scoped, a namespace-relative archive
	// whose ids are the container's already).
	uid, gid userns.Map
	// guessed: the maps are a guess; verdicts depending on them are
	// capped at SeverityLow.
	guessed bool
}

// view finds the container e lies in: the one of the entry itself (an
// archive), of AuditOptions.UIDMap, or, without a map, of a subordinate
// range holding e's owner, whose root is the owner of the outermost
// directory above e owned in the same range.
func (a *Auditor) view(e *Entry) view {
	switch {
	case e.Container != "":
		return view{in: true, why: e.Container}
	case e.Relative:
		return view{in: true, why: "in a namespace-relative archive"}
	case !a.opts.UIDMap.IsZero():
		why := a.opts.MapReason
		if why == "" {
			why = "in a container rootfs with uid map " + a.opts.UIDMap.String()
		}
		return view{in: true, why: why, uid: a.opts.UIDMap, gid: a.opts.GIDMap, guessed: a.opts.MapGuessed}
	}
	r, ok := a.subRange(e.UID)
	if !ok {
		return view{}
	}
	end := uint64(r.Start) + uint64(r.Count)
	top, topName := e.UID, "the file"
	for _, d := range e.Dirs {
		if d.UID < r.Start || uint64(d.UID) >= end {
			break
		}
		top, topName = d.UID, d.Path
	}
	for _, n := range a.roots[top] {
		if n.Self || n.MapErr != nil || n.UIDMap.IsZero() {
			continue
		}
		gid := n.GIDMap
		if gid.IsZero() {
			gid = n.UIDMap
		}
		return view{
			in: true, uid: n.UIDMap, gid: gid,
			why: fmt.Sprintf("in a container rootfs (%s is owned by uid %d, the root of the live user namespace %s, uid map %s)", topName, top, n.NSRef, n.UIDMap),
		}
	}
	count := min(end-uint64(top), 65536)
	m, err := userns.NewMap([]userns.Extent{{NsID: 0, HostID: top, Count: uint32(count)}})
	if err != nil {
		return view{} // unreachable: a single extent inside the range
	}
	v := view{
		in: true, uid: m, gid: m, guessed: true,
		why: fmt.Sprintf("probably in a container rootfs (%s is owned by uid %d, in the subordinate range %d-%d; no live user namespace has that root, so the uid map %s is a guess)", topName, top, r.Start, end-1, m),
	}
	if len(a.roots[top]) > 0 {
		// A live namespace with that root, whose map could not be read.
		v.guessed = false
		v.why = fmt.Sprintf("in a container rootfs (%s is owned by uid %d, the root of a live user namespace)", topName, top)
	}
	return v
}

// uidText names a host uid, with the container's view when the map knows
// it: "uid 1000 in the container (host 201000)".
func (v view) uidText(uid uint32) string {
	if n, err := v.uid.ToNs(uid); err == nil && !v.uid.IsZero() {
		return fmt.Sprintf("uid %d in the container (host %d)", n, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

func (v view) gidText(gid uint32) string {
	if n, err := v.gid.ToNs(gid); err == nil && !v.gid.IsZero() {
		return fmt.Sprintf("group %d in the container (host %d)", n, gid)
	}
	return fmt.Sprintf("group %d", gid)
}

// scopeRoot returns the rootid of e's namespaced caps: the root of the
// only namespaces (with their descendants) where they are honoured.
func scopeRoot(e *Entry) (uint32, bool) {
	if e.CapsErr != nil || e.Caps.Revision != xattrfmt.Revision3 || e.Caps.RootID == 0 {
		return 0, false
	}
	return e.Caps.RootID, true
}

// isRootUID reports whether uid counts as root for e: a uid that could
// give itself e's caps anyway, so that its writing the file is no
// escalation. That is 0, the container root, and for namespaced caps the
// root of their scope (the rootid) and the roots of the live namespaces
// above it: the only namespaces where the caps act are theirs.
func (a *Auditor) isRootUID(e *Entry, v view, uid uint32) bool {
	if uid == 0 {
		return true
	}
	r, scoped := scopeRoot(e)
	if scoped && uid == r {
		return true
	}
	if e.Relative {
		return false
	}
	if h, err := v.uid.ToHost(0); err == nil && h == uid {
		return true
	}
	if scoped {
		for _, n := range a.roots[r] {
			for p := n.Parent; p != nil; p = p.Parent {
				if p.RootVisible && p.RootID == uid {
					return true
				}
			}
		}
	}
	return false
}

// isRootGID is isRootUID for groups: 0, the container root's group, and
// for namespaced caps the group of their scope's root. That group is the
// gid a live namespace with that root maps to its gid 0, or else the gid
// with the rootid's number in the container (shifted maps map uids and
// gids alike: container uid 1000 goes with container gid 1000).
func (a *Auditor) isRootGID(e *Entry, v view, gid uint32) bool {
	if gid == 0 {
		return true
	}
	r, scoped := scopeRoot(e)
	if e.Relative {
		return scoped && gid == r
	}
	if h, err := v.gid.ToHost(0); err == nil && h == gid {
		return true
	}
	if !scoped {
		return false
	}
	if v.uid.IsZero() {
		if gid == r {
			return true
		}
	} else if n, err := v.uid.ToNs(r); err == nil {
		if h, err := v.gid.ToHost(n); err == nil && h == gid {
			return true
		}
	}
	for _, n := range a.roots[r] {
		for p := n; p != nil; p = p.Parent {
			if h, err := p.GIDMap.ToHost(0); err == nil && h == gid && p.MapErr == nil {
				return true
			}
		}
	}
	return false
}

// hostScoped reports whether c, as read by the auditor, acts in every
// namespace (revision 1 or 2, or revision 3 with rootid 0).
func hostScoped(c xattrfmt.FileCaps) bool {
	return c.Revision != xattrfmt.Revision3 || c.RootID == 0
}

// scope computes where the caps of e are honoured.
func (a *Auditor) scope(e *Entry, v view) Scope {
	var sc Scope
	switch {
	case e.CapsErr != nil:
		if e.Raw != nil && len(e.Raw) == 0 {
			return Scope{Kind: ScopeNone} // exec fails
		}
		return Scope{Kind: ScopeUnknown}
	case e.Mode.Type() != 0:
		return Scope{Kind: ScopeNone}
	case e.Image && !hostScoped(e.Caps):
		return Scope{Kind: ScopeNone} // a host's rootid (NSCAP009)
	case e.Image:
		// Whatever namespace the image runs in, its root's.
		return Scope{Kind: ScopeUnknown, InContainer: true}
	case e.Relative:
		if e.Caps.Revision == xattrfmt.Revision3 {
			return Scope{Kind: ScopeRelative, RootID: e.Caps.RootID}
		}
		return Scope{Kind: ScopeRelative}
	case hostScoped(e.Caps):
		return Scope{Kind: ScopeAll}
	case a.roots == nil:
		sc = Scope{Kind: ScopeUnknown}
	default:
		sc = Scope{Kind: ScopeNamespaces, Namespaces: a.honouredIn(e.Caps.RootID)}
	}
	if n, err := v.uid.ToNs(e.Caps.RootID); err == nil && !v.uid.IsZero() {
		sc.InContainer, sc.ContainerRootID = true, n
	}
	return sc
}
