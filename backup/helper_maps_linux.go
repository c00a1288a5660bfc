//go:build linux

package backup

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/nscap/nscap/userns"
)

// helperView is how a helper user namespace sees a job's target maps:
// the helper's own maps (host ids) and the target maps as seen from
// inside it (container id -> helper id).
type helperView struct {
	uid, gid     userns.Map // the helper's maps
	inUID, inGID userns.Map // the target maps inside the helper
	shown        string     // the target maps, for messages
}

// helperMaps returns the view of a helper that reaches every host id of
// the target maps uidMap and gidMap. A caller that is not root is checked
// first against its own ids and subordinate ranges, as newuidmap(1) and
// newgidmap(1) will check the helper's maps ([userns.OwnedIDs.Check]):
// otherwise the error matches [ErrHelperMap] and [userns.ErrUnmapped]
// (and [userns.ErrNoSubID] for a caller without ranges), and names the
// file and the ranges.
func helperMaps(uidMap, gidMap userns.Map, ro RootlessOptions) (helperView, error) {
	var v helperView
	var err error
	if v.uid, v.inUID, err = helperMapFor(uidMap, uint32(os.Getuid()), "uid"); err != nil {
		return helperView{}, err
	}
	if v.gid, v.inGID, err = helperMapFor(gidMap, uint32(os.Getgid()), "gid"); err != nil {
		return helperView{}, err
	}
	if os.Geteuid() != 0 {
		if err := userns.CallerUIDs(ro.SubUIDFile).Check(v.uid); err != nil {
			return helperView{}, fmt.Errorf("%w: uid map %s: %w", ErrHelperMap, uidMap, err)
		}
		if err := userns.CallerGIDs(ro.SubGIDFile).Check(v.gid); err != nil {
			return helperView{}, fmt.Errorf("%w: gid map %s: %w", ErrHelperMap, gidMap, err)
		}
	}
	v.shown = fmt.Sprintf("uid map %s, gid map %s", uidMap, gidMap)
	return v, nil
}

// helperMapFor returns the map of a helper namespace that reaches every
// host id of the target map m, and the target map as seen from inside that
// helper (container id -> helper id). The helper map puts the caller's own
// id self at 0 — only then is the re-executed helper root of its namespace
// with all capabilities in it — and the host ids of m, minus self, after it
// in m's order.
func helperMapFor(m userns.Map, self uint32, kind string) (helper, inside userns.Map, err error) {
	type piece struct{ lo, n uint64 }
	ext := []userns.Extent{{NsID: 0, HostID: self, Count: 1}}
	next := uint64(1)
	for _, e := range m.Extents() {
		lo, hi := uint64(e.HostID), uint64(e.HostID)+uint64(e.Count)
		pieces := []piece{{lo, hi - lo}}
		if s := uint64(self); s >= lo && s < hi {
			pieces = []piece{{lo, s - lo}, {s + 1, hi - s - 1}}
		}
		for _, p := range pieces {
			if p.n == 0 {
				continue
			}
			if next+p.n > uint64(userns.InvalidID) {
				return userns.Map{}, userns.Map{}, fmt.Errorf("%w: %s map %s maps more ids than a namespace holds", ErrHelperMap, kind, m)
			}
			ext = append(ext, userns.Extent{NsID: uint32(next), HostID: uint32(p.lo), Count: uint32(p.n)})
			next += p.n
		}
	}
	if helper, err = userns.NewMap(ext); err != nil {
		return userns.Map{}, userns.Map{}, fmt.Errorf("%s map of the helper namespace: %w", kind, err)
	}
	if inside, err = userns.Compose(m, helper.Invert()); err != nil {
		return userns.Map{}, userns.Map{}, fmt.Errorf("%s map inside the helper namespace: %w", kind, err)
	}
	return helper, inside, nil
}

// startHelper starts the helper of v with the descriptors files; what
// names the job for messages ("restore", "back up").
func startHelper(ctx context.Context, v helperView, ro RootlessOptions, files []*os.File, what string) (*userns.Helper, error) {
	h, err := userns.StartHelper(ctx, userns.HelperOptions{
		UIDMap: v.uid, GIDMap: v.gid, SubUIDFile: ro.SubUIDFile, SubGIDFile: ro.SubGIDFile,
		Stderr: ro.Stderr, ExtraFiles: files,
	})
	if err == nil {
		return h, nil
	}
	if errors.Is(err, userns.ErrUnmapped) || errors.Is(err, userns.ErrNoSubID) {
		return nil, fmt.Errorf("%w: %s: %w", ErrHelperMap, v.shown, err)
	}
	return nil, fmt.Errorf("%s through a helper user namespace: %w", what, err)
}
