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
	"sync"

	"golang.org/x/sys/unix"

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

// shiftEvent is one reporter event of the helper.
type shiftEvent struct {
	Kind   string // "change", "warn", "error"
	Path   string
	Msg    string       `json:",omitempty"`
	Change *ShiftChange `json:",omitempty"`
}

type shiftResp struct {
	Summary ShiftSummary
	Events  []shiftEvent
	Dropped int64 // events beyond maxShiftEvents
	Err     string
}

// maxShiftEvents bounds the events a helper sends back.
const maxShiftEvents = 1 << 20

// shiftCollector is the reporter of a shift in the helper.
type shiftCollector struct {
	NopShiftReporter
	resp *shiftResp
	mu   sync.Mutex
}

func (c *shiftCollector) add(ev shiftEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.resp.Events) >= maxShiftEvents {
		c.resp.Dropped++
		return
	}
	c.resp.Events = append(c.resp.Events, ev)
}

func (c *shiftCollector) Change(p string, ch ShiftChange) {
	c.add(shiftEvent{Kind: "change", Path: p, Change: &ch})
}

func (c *shiftCollector) Warn(p string, err error) {
	c.add(shiftEvent{Kind: "warn", Path: p, Msg: err.Error()})
}

func (c *shiftCollector) Error(p string, err error) error {
	c.add(shiftEvent{Kind: "error", Path: p, Msg: err.Error()})
	return nil
}

func serveShift(raw json.RawMessage, _ userns.HelperEmit) (json.RawMessage, error) {
	var req shiftReq
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, err
	}
	resp := &shiftResp{}
	col := &shiftCollector{resp: resp}
	sum, err := Shift(context.Background(), req.Root, ShiftOptions{
		FromUID: req.FromUID, FromGID: req.FromGID, ToUID: req.ToUID, ToGID: req.ToGID,
		ForeignCaps: req.ForeignCaps, CrossMounts: req.CrossMounts, DryRun: req.DryRun,
		Workers: req.Workers, StateDir: req.StateDir, Reporter: col, inHelper: true,
	})
	resp.Summary = sum
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
// caller's state directory. Events are passed to opts.Reporter when the
// helper is done, with the ids of changes as host ids; the messages of
// errors and warnings name ids as the helper sees them. The binary must
// call [userns.HelperMain] first thing in main (and in TestMain).
func ShiftRootless(ctx context.Context, root string, opts ShiftOptions, ro RootlessOptions) (ShiftSummary, error) {
	opts.applyDefaults()
	if err := checkShiftMaps(&opts); err != nil {
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
		sfd, dir, err := stateDirFor(opts.StateDir, "shift", true)
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
	err = h.Call(helperOpShift, req, &resp)
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return ShiftSummary{}, err
	}
	if err := resp.replay(opts.Reporter, hUID, hGID); err != nil {
		return resp.Summary, err
	}
	if resp.Dropped > 0 {
		opts.Reporter.Warn(".", fmt.Errorf("%d more events of the helper were not kept", resp.Dropped))
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

// replay passes the events the helper collected to rep, with the ids of
// changes as host ids (hUID and hGID are the helper's maps). An error
// returned by rep.Error stops the replay and is returned.
func (resp *shiftResp) replay(rep ShiftReporter, hUID, hGID userns.Map) error {
	toHost := func(m userns.Map, id uint32) uint32 {
		if h, err := m.ToHost(id); err == nil {
			return h
		}
		return id
	}
	for _, ev := range resp.Events {
		switch ev.Kind {
		case "change":
			c := *ev.Change
			c.OldUID, c.NewUID = toHost(hUID, c.OldUID), toHost(hUID, c.NewUID)
			c.OldGID, c.NewGID = toHost(hGID, c.OldGID), toHost(hGID, c.NewGID)
			if c.Caps {
				c.OldRootID, c.NewRootID = toHost(hUID, c.OldRootID), toHost(hUID, c.NewRootID)
			}
			rep.Change(ev.Path, c)
		case "warn":
			rep.Warn(ev.Path, errors.New(ev.Msg))
		case "error":
			if err := rep.Error(ev.Path, errors.New(ev.Msg)); err != nil {
				return err
			}
		}
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
