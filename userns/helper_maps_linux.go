package userns

import (
	"fmt"
	"os"
)

// resolvedMaps are the maps of a helper and, for each, whether it is the
// single-id map of a caller without subordinate ids, written without
// newuidmap or newgidmap.
type resolvedMaps struct {
	uid, gid             Map
	uidSingle, gidSingle bool
}

// helperMaps resolves the maps of opts and checks them against the
// caller's subordinate ranges. A caller that is not root and has no range
// in a file gets the single-id map of its own effective id (which the
// kernel allows it to write), and may only name that map.
func helperMaps(opts HelperOptions) (resolvedMaps, error) {
	root := os.Geteuid() == 0
	if root && !opts.UIDMap.IsZero() && !opts.GIDMap.IsZero() {
		return resolvedMaps{uid: opts.UIDMap, gid: opts.GIDMap}, nil
	}
	var hm resolvedMaps
	var err error
	if hm.uid, hm.uidSingle, err = pickMap(opts.UIDMap, CallerUIDs(opts.SubUIDFile), uint32(os.Geteuid()), root); err != nil {
		return resolvedMaps{}, err
	}
	if hm.gid, hm.gidSingle, err = pickMap(opts.GIDMap, CallerGIDs(opts.SubGIDFile), uint32(os.Getegid()), root); err != nil {
		return resolvedMaps{}, err
	}
	return hm, nil
}

// pickMap returns the map m of a helper, or the caller's rootless map
// when m is zero, and whether it is a single-id map; effective is the id
// the kernel checks a single-id map against.
func pickMap(m Map, owned OwnedIDs, effective uint32, root bool) (Map, bool, error) {
	if !root && owned.None() {
		return singleMap(m, owned, effective)
	}
	if owned.Err != nil {
		return Map{}, false, owned.Err
	}
	if m.IsZero() {
		m, err := RootlessMap(owned.Self, owned.Ranges)
		return m, false, err
	}
	if !root {
		if err := owned.Check(m); err != nil {
			return Map{}, false, err
		}
	}
	return m, false, nil
}

// singleMap is pickMap for a caller without subordinate ids.
func singleMap(m Map, owned OwnedIDs, effective uint32) (Map, bool, error) {
	single, err := NewMap([]Extent{{NsID: 0, HostID: effective, Count: 1}})
	if err != nil {
		return Map{}, false, err
	}
	if m.IsZero() {
		return single, true, nil
	}
	if len(m.extents) != 1 || m.extents[0].HostID != effective || m.extents[0].Count != 1 {
		e := &MapError{
			Extent: -1, Err: ErrUnmapped,
			Detail: fmt.Sprintf("the caller has no subordinate ids in %s: the map %s may only be its own id %d, count 1", owned.File, m, effective),
		}
		if len(m.extents) == 1 {
			e.Extent, e.Text, e.Detail = 0, m.extents[0].String(), fmt.Sprintf("the caller has no subordinate ids in %s: the map may only be its own id %d, count 1", owned.File, effective)
		}
		return Map{}, false, e
	}
	return m, true, nil
}
