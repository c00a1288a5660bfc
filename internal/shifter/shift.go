package shifter

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/userns"
)

// ErrShiftOverlap is returned by [Shift] when the host ids of the source
// and target maps overlap. A shift killed midway leaves some inodes moved
// and others not; with disjoint ranges an id tells which (an id in the
// source range is still to move, any other is done or foreign), so
// running the shift again completes it. With overlapping ranges an id in
// both could be either, and nothing on disk says which: shift through a
// free range instead (A to C, then C to B).
var ErrShiftOverlap = errors.New("backup: source and target id ranges overlap")

// ErrShiftRunning is returned by [Shift] when another shift of the same
// tree is running (it holds the lock of the journal).
var ErrShiftRunning = errors.New("backup: another shift of this tree is running")

// ShiftOptions tunes [Shift].
type ShiftOptions struct {
	// FromUID and FromGID are the maps the tree is owned under now
	// (container ids to host ids, as in /proc/PID/uid_map); ToUID and
	// ToGID are the maps it is to be owned under. FromGID defaults to
	// FromUID, ToGID to ToUID. A map of identity extents ("0:0:65536")
	// describes a privileged rootfs of raw host ids.
	FromUID, FromGID, ToUID, ToGID userns.Map
	// archive.ForeignCaps is the policy for a security.capability whose rootid
	// is outside FromUID (a host-scoped revision-2 cap in a container's
	// tree, or another container's cap): [ForeignCapsFail] (the default)
	// leaves the whole inode as it is and reports an error,
	// [ForeignCapsSkip] drops the cap with a warning, [ForeignCapsHost]
	// keeps it as it is with a warning.
	ForeignCaps archive.ForeignCaps
	// CrossMounts descends into file systems mounted below the root.
	// Off by default: a mount point is reported and left alone, as
	// find -xdev and tar --one-file-system do.
	CrossMounts bool
	// DryRun reports every change ([ShiftReporter.Change]) and makes
	// none.
	DryRun bool
	// Workers is the number of goroutines walking directories; 0 means
	// one per P (GOMAXPROCS), at most 8.
	Workers int
	// StateDir is the directory holding the shift's journal while it
	// runs (see [Shift]); its rules and default are those of
	// [RestoreOptions.StateDir], with "shift" for "restore".
	StateDir string
	// Reporter receives the events; nil means none.
	Reporter ShiftReporter

	// InHelper is set in a helper user namespace (ShiftRootless), for
	// messages.
	InHelper bool
}

// ApplyDefaults fills in the zero fields of o.
func (o *ShiftOptions) ApplyDefaults() {
	if o.FromGID.IsZero() {
		o.FromGID = o.FromUID
	}
	if o.ToGID.IsZero() {
		o.ToGID = o.ToUID
	}
	if o.Workers <= 0 {
		o.Workers = min(runtime.GOMAXPROCS(0), 8)
	}
	if o.Reporter == nil {
		o.Reporter = NopShiftReporter{}
	}
}

// ShiftChange describes what a shift changes on one inode. Ids are host
// ids; a field left as it is has its Old and New equal.
type ShiftChange struct {
	OldUID, NewUID uint32
	OldGID, NewGID uint32
	// OldRootID and NewRootID are the capability's root (host uid; 0 for
	// revision 2) when Caps is set.
	Caps                 bool
	OldRootID, NewRootID uint32
	// ACLs counts the POSIX ACL xattrs (access, default) rewritten.
	ACLs int
}

// ShiftReporter receives the events of a shift. Its methods MUST be safe
// for concurrent use. Paths are relative to the root ("." for it).
type ShiftReporter interface {
	// Change is called for each inode the shift changes (or would
	// change, under DryRun), once per inode.
	Change(path string, c ShiftChange)
	// Warn reports what the shift did as told but must not do silently:
	// a mount point left alone, a foreign cap dropped or kept.
	Warn(path string, err error)
	// Error reports an inode, or an id of it, left as it was. Returning
	// nil continues, and the shift then ends with an error counting
	// them; returning an error stops the shift with it.
	Error(path string, err error) error
	// Finish is called once at the end with the totals.
	Finish(ShiftSummary)
}

// NopShiftReporter ignores every event (Error returns nil). Embed it to
// implement only some events.
type NopShiftReporter struct{}

// Change does nothing.
func (NopShiftReporter) Change(string, ShiftChange) {}

// Warn does nothing.
func (NopShiftReporter) Warn(string, error) {}

// Error returns nil: continue.
func (NopShiftReporter) Error(string, error) error { return nil }

// Finish does nothing.
func (NopShiftReporter) Finish(ShiftSummary) {}

// ShiftSummary totals a shift.
type ShiftSummary struct {
	Entries  int64 `json:"entries"`  // inodes looked at (a hardlinked inode once)
	Changed  int64 `json:"changed"`  // inodes changed (or to change, under DryRun)
	Caps     int64 `json:"caps"`     // capabilities rewritten
	ACLs     int64 `json:"acls"`     // POSIX ACL xattrs rewritten
	Mounts   int64 `json:"mounts"`   // mount points left alone
	Replayed int64 `json:"replayed"` // inodes completed from the journal of an interrupted run
	Failures int64 `json:"failures"` // inodes or ids left as they were (reported to Error)
	Warnings int64 `json:"warnings"` // notices (reported to Warn)
	DryRun   bool  `json:"dry_run,omitempty"`
}

// ShiftFailedError ends a shift during which some inodes or ids were left
// as they were (reported to [ShiftReporter.Error]). The rest of the tree
// is shifted.
type ShiftFailedError struct{ Failures int64 }

// Error implements error.
func (e *ShiftFailedError) Error() string {
	return fmt.Sprintf("%d inodes or ids left as they were (see the errors above)", e.Failures)
}

// IdentityLike returns the identity map over the container ids m maps:
// each extent "NS:HOST:COUNT" of m gives "NS:NS:COUNT". It is the map of a
// privileged rootfs (raw host ids) that is to be owned under m, or that m's
// rootfs came from.
func IdentityLike(m userns.Map) userns.Map {
	var ext []userns.Extent
	for _, e := range m.Extents() {
		ext = append(ext, userns.Extent{NsID: e.NsID, HostID: e.NsID, Count: e.Count})
	}
	id, err := userns.NewMap(ext)
	if err != nil { // cannot happen: m's ns ranges are disjoint
		return userns.Map{}
	}
	return id
}

// shiftMaps translates host ids from the source maps to the target maps.
type shiftMaps struct {
	fromUID, fromGID, toUID, toGID userns.Map
}

// CheckMaps refuses maps a shift cannot use: missing, or with
// overlapping host ranges (see [ErrShiftOverlap]).
func CheckMaps(o *ShiftOptions) error {
	if o.FromUID.IsZero() || o.ToUID.IsZero() {
		return errors.New("shift needs both a source and a target map")
	}
	for _, p := range []struct {
		kind     string
		from, to userns.Map
	}{{"uid", o.FromUID, o.ToUID}, {"gid", o.FromGID, o.ToGID}} {
		for _, a := range p.from.Extents() {
			for _, b := range p.to.Extents() {
				alo, ahi := uint64(a.HostID), uint64(a.HostID)+uint64(a.Count)
				blo, bhi := uint64(b.HostID), uint64(b.HostID)+uint64(b.Count)
				if alo < bhi && blo < ahi {
					lo, hi := max(alo, blo), min(ahi, bhi)
					return fmt.Errorf("%w: host %ss %d-%d are in both %s and %s; a shift killed midway could not tell moved ids from unmoved ones there: shift to a free range first, then to the target",
						ErrShiftOverlap, p.kind, lo, hi-1, p.from, p.to)
				}
			}
		}
	}
	return nil
}

// id moves a host id from one map to the other. ok is false for an id
// outside from (left as it is); err is set for an id inside from whose
// container id has no host id in to.
func moveID(from, to userns.Map, kind archive.IDKind, h uint32) (n uint32, ok bool, err error) {
	ns, e := from.ToNs(h)
	if e != nil {
		return h, false, nil
	}
	n, e = to.ToHost(ns)
	if e != nil {
		return h, false, &archive.IDError{Kind: kind, ID: ns, Err: e}
	}
	return n, true, nil
}

// shiftCaps returns the capability raw rewritten for the target map, and
// its old and new roots. foreign is set when its rootid is outside the
// source map.
func (m shiftMaps) caps(raw []byte) (out []byte, oldRoot, newRoot uint32, foreign bool, err error) {
	root, err := archive.CapsRoot(raw)
	if err != nil {
		return nil, 0, 0, false, err
	}
	n, ok, err := moveID(m.fromUID, m.toUID, archive.KindRootID, root)
	if err != nil {
		return nil, root, root, false, err
	}
	if !ok {
		return raw, root, root, true, nil
	}
	return archive.CapsWithRoot(raw, n), root, n, false, nil
}

// acl returns the ACL xattr raw with its ids moved. Ids outside the source
// maps are left as they are and reported in unmoved.
func (m shiftMaps) acl(raw []byte) (out []byte, unmoved []*archive.IDError, err error) {
	mv := func(from, to userns.Map, kind archive.IDKind) func(uint32) (uint32, error) {
		return func(id uint32) (uint32, error) {
			n, ok, err := moveID(from, to, kind, id)
			if err != nil {
				return 0, err
			}
			if !ok {
				unmoved = append(unmoved, &archive.IDError{Kind: kind, ID: id, Host: true, Err: &userns.UnmappedError{ID: id, Map: from}})
			}
			return n, nil
		}
	}
	out, err = archive.TranslateACL("posix acl", raw, mv(m.fromUID, m.toUID, archive.KindACLUser), mv(m.fromGID, m.toGID, archive.KindACLGroup))
	return out, unmoved, err
}
