//go:build linux

package backup

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/internal/jobstate"
	"github.com/nscap/nscap/internal/shifter"
	"github.com/nscap/nscap/userns"
)

const helperOpShift = "backup.shift"

func init() {
	userns.RegisterHelperOp(helperOpShift, serveShift)
}

// shiftReq is the request of the shift helper operation; the maps are
// those of the helper's view.
type shiftReq struct {
	Root                           string
	FromUID, FromGID, ToUID, ToGID userns.Map
	ForeignCaps                    ForeignCaps
	CrossMounts, DryRun            bool
	Workers                        int
	StateDir                       string
}

// shiftEvent is one reporter event of the helper, streamed to the
// caller through [userns.HelperEmit].
type shiftEvent struct {
	Kind   string // "change", "warn", "error"
	Path   string
	Msg    string       `json:",omitempty"`
	Change *ShiftChange `json:",omitempty"`
}

type shiftResp struct {
	Summary ShiftSummary
	Err     string
}

// shiftEmitter is the reporter of a shift in the helper; with the parent
// gone, a failed emit is of no concern (the helper is killed).
type shiftEmitter struct {
	NopShiftReporter
	emit userns.HelperEmit
}

func (e shiftEmitter) Change(p string, ch ShiftChange) {
	_ = e.emit(shiftEvent{Kind: "change", Path: p, Change: &ch})
}

func (e shiftEmitter) Warn(p string, err error) {
	_ = e.emit(shiftEvent{Kind: "warn", Path: p, Msg: err.Error()})
}

func (e shiftEmitter) Error(p string, err error) error {
	_ = e.emit(shiftEvent{Kind: "error", Path: p, Msg: err.Error()})
	return nil
}

func serveShift(raw json.RawMessage, emit userns.HelperEmit) (json.RawMessage, error) {
	var req shiftReq
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, err
	}
	sum, err := Shift(context.Background(), req.Root, ShiftOptions{
		FromUID: req.FromUID, FromGID: req.FromGID, ToUID: req.ToUID, ToGID: req.ToGID,
		ForeignCaps: req.ForeignCaps, CrossMounts: req.CrossMounts, DryRun: req.DryRun,
		Workers: req.Workers, StateDir: req.StateDir, Reporter: shiftEmitter{emit: emit}, InHelper: true,
	})
	resp := shiftResp{Summary: sum}
	var fe *ShiftFailedError
	if err != nil && !errors.As(err, &fe) {
		resp.Err = err.Error()
	}
	return json.Marshal(resp)
}

// ShiftRootless shifts like [Shift], but inside a helper user namespace
// that maps the host ids of both the source and the target maps: an
// unprivileged caller that owns both ranges as subordinate ids
// (/etc/subuid, /etc/subgid) gets the tree root's Shift makes. Inside, the
// maps are composed with the inverse of the helper's, so owners, ACL ids
// and rootids are written as the helper sees them and the kernel stores
// the host ids (see [RestoreRootless]). The journal is kept in the
// caller's state directory. Events are passed to opts.Reporter as the
// helper sends them, one at a time, with the ids of changes as host ids;
// the messages of errors and warnings name ids as the helper sees them.
// An error returned by opts.Reporter.Error is returned when the helper is
// done: the helper finishes the shift, and later events are not passed
// on. The binary must
// call [userns.HelperMain] first thing in main (and in TestMain).
func ShiftRootless(ctx context.Context, root string, opts ShiftOptions, ro RootlessOptions) (ShiftSummary, error) {
	opts.ApplyDefaults()
	if err := shifter.CheckMaps(&opts); err != nil {
		return ShiftSummary{}, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return ShiftSummary{}, err
	}
	v, err := helperMaps(joinMaps(opts.FromUID, opts.ToUID), joinMaps(opts.FromGID, opts.ToGID), ro)
	if err != nil {
		return ShiftSummary{}, err
	}
	hUID, hGID := v.uid, v.gid
	req := shiftReq{Root: abs, ForeignCaps: opts.ForeignCaps, CrossMounts: opts.CrossMounts, DryRun: opts.DryRun, Workers: opts.Workers}
	for _, p := range []struct {
		in     userns.Map
		helper userns.Map
		out    *userns.Map
	}{{opts.FromUID, hUID, &req.FromUID}, {opts.ToUID, hUID, &req.ToUID}, {opts.FromGID, hGID, &req.FromGID}, {opts.ToGID, hGID, &req.ToGID}} {
		if *p.out, err = userns.Compose(p.in, p.helper.Invert()); err != nil {
			return ShiftSummary{}, fmt.Errorf("map inside the helper namespace: %w", err)
		}
	}
	if !opts.DryRun {
		// The caller's own state directory, made here: the helper, root
		// of a namespace of its own, has no home of its own.
		sfd, dir, err := jobstate.DirFor(opts.StateDir, "shift", true)
		if err != nil {
			return ShiftSummary{}, err
		}
		_ = unix.Close(sfd)
		req.StateDir = dir
	}
	h, err := userns.StartHelper(ctx, userns.HelperOptions{UIDMap: hUID, GIDMap: hGID, SubUIDFile: ro.SubUIDFile, SubGIDFile: ro.SubGIDFile, Stderr: ro.Stderr})
	if err != nil {
		return ShiftSummary{}, err
	}
	var resp shiftResp
	rp := &shiftReplay{rep: opts.Reporter, uid: hUID, gid: hGID}
	err = h.CallEvents(helperOpShift, req, &resp, userns.HelperEvents(rp.event))
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ShiftSummary{}, err
	}
	if rp.err != nil {
		return resp.Summary, rp.err
	}
	opts.Reporter.Finish(resp.Summary)
	if resp.Err != "" {
		return resp.Summary, errors.New(resp.Err)
	}
	if resp.Summary.Failures > 0 {
		return resp.Summary, &ShiftFailedError{Failures: resp.Summary.Failures}
	}
	return resp.Summary, nil
}

// shiftReplay passes the events of a shift helper to rep, with the ids
// of changes as host ids (uid and gid are the helper's maps). After an
// error returned by rep.Error, kept in err, it passes nothing on.
type shiftReplay struct {
	rep      ShiftReporter
	uid, gid userns.Map
	err      error
}

func (r *shiftReplay) event(ev shiftEvent) error {
	if r.err != nil {
		return nil
	}
	toHost := func(m userns.Map, id uint32) uint32 {
		if h, err := m.ToHost(id); err == nil {
			return h
		}
		return id
	}
	switch ev.Kind {
	case "change":
		if ev.Change == nil {
			return nil
		}
		c := *ev.Change
		c.OldUID, c.NewUID = toHost(r.uid, c.OldUID), toHost(r.uid, c.NewUID)
		c.OldGID, c.NewGID = toHost(r.gid, c.OldGID), toHost(r.gid, c.NewGID)
		if c.Caps {
			c.OldRootID, c.NewRootID = toHost(r.uid, c.OldRootID), toHost(r.uid, c.NewRootID)
		}
		r.rep.Change(ev.Path, c)
	case "warn":
		r.rep.Warn(ev.Path, errors.New(ev.Msg))
	case "error":
		r.err = r.rep.Error(ev.Path, errors.New(ev.Msg))
	}
	return nil
}

// joinMaps returns a map whose host ids are those of a and b (disjoint),
// for the helper map that must cover both. The extents are taken in the
// order of their host ids, so that a shift and its reverse see the tree
// through the same helper map: the journal of one, in the helper's ids,
// means the same to the other.
func joinMaps(a, b userns.Map) userns.Map {
	ext := append(a.Extents(), b.Extents()...)
	slices.SortFunc(ext, func(x, y userns.Extent) int { return cmp.Compare(x.HostID, y.HostID) })
	next := uint32(0)
	for i := range ext {
		ext[i].NsID = next
		next += ext[i].Count
	}
	m, err := userns.NewMap(ext)
	if err != nil {
		return a
	}
	return m
}
