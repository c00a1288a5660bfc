//go:build linux

package backup

import (
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/nscap/nscap/userns"
)

// ErrHelperMap is returned by [RestoreRootless] and [VerifyRootless] when
// the target maps cannot be the maps of a helper user namespace of the
// caller: an unprivileged caller may only map its own id and the
// subordinate ids it owns (/etc/subuid, /etc/subgid), as newuidmap(1)
// enforces. Nothing was written. The error also matches the userns cause
// ([userns.ErrUnmapped] or [userns.ErrNoSubID]).
var ErrHelperMap = errors.New("backup: target map outside the caller's own id and subordinate ids")

// ErrHelperNoMap is returned by [RestoreRootless] and [VerifyRootless]
// without target maps: the helper user namespace gets exactly the target
// maps, so there must be some.
var ErrHelperNoMap = errors.New("backup: a restore through a helper user namespace needs target maps")

// RootlessOptions configures the helper user namespace of
// [RestoreRootless] and [VerifyRootless].
type RootlessOptions struct {
	// SubUIDFile and SubGIDFile default to [userns.SubUIDFile] and
	// [userns.SubGIDFile].
	SubUIDFile, SubGIDFile string
	// Stderr receives what the helper writes on its standard error; nil
	// discards it. Progress events come back on a pipe of their own.
	Stderr io.Writer
}

// Helper operations, registered in init so that the re-executed helper
// (the same binary) serves them.
const (
	helperOpRestore = "backup.restore"
	helperOpVerify  = "backup.verify"
)

// The extra files of a restore or verify helper, by index
// ([userns.HelperOptions.ExtraFiles]): the archive, dest and, when
// helperReq.State is set, the caller's state directory.
const (
	helperFileArchive = iota
	helperFileDest
	helperFileState
)

// helperReq is the request of the helper operations. The archive, dest
// and the state directory are extra files of the helper, checked by
// device and inode; the maps are those of the helper's view (see
// [RestoreRootless]).
type helperReq struct {
	ArchiveDev uint64 `json:"archive_dev"`
	ArchiveIno uint64 `json:"archive_ino"`
	DestDev    uint64 `json:"dest_dev"`
	DestIno    uint64 `json:"dest_ino"`
	// DestPath is the destination as the caller named it, for messages.
	DestPath     string          `json:"dest_path"`
	UIDMap       string          `json:"uid_map"`
	GIDMap       string          `json:"gid_map"`
	SourceUIDMap string          `json:"source_uid_map,omitempty"`
	SourceGIDMap string          `json:"source_gid_map,omitempty"`
	Overwrite    OverwritePolicy `json:"overwrite,omitempty"`
	Workers      int             `json:"workers,omitempty"`
	Sparse       bool            `json:"sparse,omitempty"`
	XattrsInc    []string        `json:"xattrs_include,omitempty"`
	ForeignCaps  ForeignCaps     `json:"foreign_caps,omitempty"`
	Paths        []string        `json:"paths,omitempty"`
	// ShownUIDMap and ShownGIDMap are the target maps as the caller gave
	// them (host ids), for messages: UIDMap is the helper's view.
	ShownUIDMap string `json:"shown_uid_map,omitempty"`
	ShownGIDMap string `json:"shown_gid_map,omitempty"`
	// State says the caller handed over its state directory (see
	// [RestoreOptions.StateDir]), checked like dest; a verify may have
	// none.
	State    bool   `json:"state,omitempty"`
	StateDev uint64 `json:"state_dev,omitempty"`
	StateIno uint64 `json:"state_ino,omitempty"`
}

// helperVerifyResp is the result of the verify operation.
type helperVerifyResp struct {
	Differences int `json:"differences"`
}

func init() {
	userns.RegisterHelperOp(helperOpRestore, serveRestore)
	userns.RegisterHelperOp(helperOpVerify, serveVerify)
}

// RestoreRootless restores like [Restore], but inside a helper user
// namespace that maps the host ids of the target maps opts.UIDMap and
// opts.GIDMap: an unprivileged caller that owns those ids as subordinate
// ranges (/etc/subuid, /etc/subgid; the helper's maps are written by
// newuidmap(1) and newgidmap(1), see [userns.StartHelper]) gets the tree
// that root's Restore with the same options makes. The binary must call
// [userns.HelperMain] first thing in main (and in TestMain).
//
// The helper's maps put the caller's own id at 0 (only the owner of the
// namespace's root id regains its capabilities when the helper re-executes
// itself) and the target's host ids after it. Inside, the archive is
// restored with the target maps composed with the inverse of the helper's
// (container id -> helper id), so owners, ACL ids and capability rootids
// are written as the helper sees them, and the kernel stores the target's
// host ids: chown and ACL ids through the helper's maps, and a capability
// written there as revision 3 with the host id of its rootid
// (cap_convert_nscap in security/commoncap.c). The result on the host is
// the same as root's.
//
// The archive and dest are handed to the helper as descriptors (r that is
// not an *os.File is copied to it through a pipe), so their parent
// directories need not be searchable from the helper; so is the caller's
// state directory (opts.StateDir or its default, see
// [RestoreOptions.StateDir]), where the helper keeps the restore's state:
// a restore into dest, through a helper or not, finds it there. The helper, root of
// its namespace, may write in dest when the caller or an id of the target
// maps owns it; a directory of another owner must be writable by others.
// The caller's own id is never written unless the target maps name it.
//
// What a user namespace cannot do fails per entry, reported to opts.Error
// as by Restore: device nodes (mknod needs CAP_MKNOD in the initial
// namespace), trusted.* xattrs, and the host-scoped capabilities of an
// archive made with --foreign-caps host.
//
// Progress events and per-entry errors stream back from the helper as it
// goes; opts.Reporter is called from one goroutine at a
// time. An error returned by opts.Error kills the helper (what is not in
// place is swept by the next restore into dest) and is returned. Errors
// before the helper starts: [ErrHelperNoMap]; [ErrHelperMap] when a host
// id of the target maps is neither the caller's own nor in its
// subordinate ranges (nothing written); a missing newuidmap
// ([os/exec.ErrNotFound]); dest not a directory.
func RestoreRootless(ctx context.Context, r io.Reader, dest string, opts RestoreOptions, ro RootlessOptions) (RestoreSummary, error) {
	opts.ApplyDefaults()
	var sum RestoreSummary
	err := runHelper(ctx, helperRun{
		op: helperOpRestore, archive: r, dest: dest, stateDir: opts.StateDir, ro: ro,
		uidMap: opts.UIDMap, gidMap: opts.GIDMap,
		req: helperReq{
			SourceUIDMap: opts.SourceUIDMap.String(), SourceGIDMap: opts.SourceGIDMap.String(),
			Overwrite: opts.Overwrite, Workers: opts.Workers, Sparse: opts.Sparse,
			XattrsInc: opts.XattrsInclude, ForeignCaps: opts.ForeignCaps, Paths: opts.Paths,
		},
		handle: func(ev helperEvent) error {
			switch ev.Type {
			case "item":
				opts.Reporter.CompleteItem(ev.Path, ev.Action, ItemStats{Size: ev.Size, Caps: ev.Caps})
			case "warning":
				opts.Reporter.Warn(ev.Path, ev.err())
			case "error":
				return opts.Reporter.Error(ev.Path, ev.err())
			}
			return nil
		},
		resp: &sum,
	})
	return sum, err
}

// VerifyRootless verifies like [Verify], but inside a helper user
// namespace set up as by [RestoreRootless]: an unprivileged caller checks
// a tree it restored with RestoreRootless (whose files it may not be able
// to read itself). Paths in the differences are under dest as given; the
// owners, ACL ids and capability rootids in their Want and Got are shown
// as the target container sees them (the container root is 0 and its caps
// are revision 2), not as host ids.
func VerifyRootless(ctx context.Context, r io.Reader, dest string, opts VerifyOptions, ro RootlessOptions) ([]Difference, error) {
	gid := opts.GIDMap
	if gid.IsZero() {
		gid = opts.UIDMap
	}
	sgid := opts.SourceGIDMap
	if sgid.IsZero() {
		sgid = opts.SourceUIDMap
	}
	var diffs []Difference
	err := runHelper(ctx, helperRun{
		op: helperOpVerify, archive: r, dest: dest, stateDir: opts.StateDir, ro: ro,
		uidMap: opts.UIDMap, gidMap: gid,
		req: helperReq{
			SourceUIDMap: opts.SourceUIDMap.String(), SourceGIDMap: sgid.String(),
			XattrsInc: opts.XattrsInclude, ForeignCaps: opts.ForeignCaps,
		},
		handle: func(ev helperEvent) error {
			if ev.Type != "diff" || ev.Diff == nil {
				return nil
			}
			diffs = append(diffs, *ev.Diff)
			if opts.Difference != nil {
				return opts.Difference(*ev.Diff)
			}
			return nil
		},
		resp: &helperVerifyResp{},
	})
	return diffs, err
}

// helperRun is a restore or verify through a helper, what runHelper
// needs besides the context.
type helperRun struct {
	op       string // helperOpRestore or helperOpVerify
	archive  io.Reader
	dest     string
	stateDir string // RestoreOptions.StateDir
	// uidMap and gidMap are the target maps (host ids); gidMap is uidMap
	// when zero.
	uidMap, gidMap userns.Map
	// req has the tuning of the job; runHelper adds the maps and the
	// descriptors.
	req    helperReq
	ro     RootlessOptions
	handle func(helperEvent) error // called for each event, one at a time
	resp   any                     // the operation's result
}

// runHelper starts a helper with the target maps (plus the caller's own
// ids), hands it the archive, dest and the state directory, runs the
// operation and dispatches its events to run.handle, one at a time. An
// error returned by handle kills the helper and is returned.
func runHelper(ctx context.Context, run helperRun) error {
	if run.uidMap.IsZero() {
		return ErrHelperNoMap
	}
	if run.gidMap.IsZero() {
		run.gidMap = run.uidMap
	}
	v, err := helperMaps(run.uidMap, run.gidMap, run.ro)
	if err != nil {
		return err
	}
	req := run.req
	req.DestPath, req.UIDMap, req.GIDMap = run.dest, v.inUID.String(), v.inGID.String()
	req.ShownUIDMap, req.ShownGIDMap = run.uidMap.String(), run.gidMap.String()
	hf, err := openHelperFiles(run, &req)
	if err != nil {
		return err
	}
	defer hf.close()
	h, err := startHelper(ctx, v, run.ro, hf.files, "restore")
	hf.started()
	if err != nil {
		return err
	}
	events := &eventHandler{handle: withUnmappedOwner(run.handle, v.uid, v.gid)}
	callErr := h.CallEvents(run.op, req, run.resp, events.fn())
	closeErr := h.Close()
	switch {
	case events.aborted != nil:
		return events.aborted
	case ctx.Err() != nil:
		return ctx.Err()
	case callErr != nil:
		return helperCallError(callErr)
	}
	return closeErr
}

// serveRestore runs in the helper: it checks the inherited descriptors,
// restores through them and emits the events.
func serveRestore(raw json.RawMessage, emit userns.HelperEmit) (json.RawMessage, error) {
	j, err := openHelperJob(raw)
	if err != nil {
		return nil, err
	}
	rw := j.rw
	opts := RestoreOptions{
		UIDMap: j.maps[0], GIDMap: j.maps[1], SourceUIDMap: j.maps[2], SourceGIDMap: j.maps[3],
		Overwrite: j.req.Overwrite, Workers: j.req.Workers, Sparse: j.req.Sparse, XattrsInclude: j.req.XattrsInc,
		StateDir: j.stateDir, ForeignCaps: j.req.ForeignCaps, Paths: j.req.Paths,
		ShownUIDMap: j.maps[4], ShownGIDMap: j.maps[5],
		Reporter: helperReporter{emit: emit, rw: rw},
	}
	sum, err := Restore(context.Background(), j.archive, j.procDest, opts)
	if err != nil {
		return nil, rw.err(err)
	}
	return json.Marshal(sum)
}

// serveVerify runs in the helper: it verifies through the inherited
// descriptors and emits each difference.
func serveVerify(raw json.RawMessage, emit userns.HelperEmit) (json.RawMessage, error) {
	j, err := openHelperJob(raw)
	if err != nil {
		return nil, err
	}
	vo := VerifyOptions{
		UIDMap: j.maps[0], GIDMap: j.maps[1], SourceUIDMap: j.maps[2], SourceGIDMap: j.maps[3],
		XattrsInclude: j.req.XattrsInc, StateDir: j.stateDir, ForeignCaps: j.req.ForeignCaps,
		ShownUIDMap: j.maps[4], ShownGIDMap: j.maps[5],
		Difference: func(d Difference) error {
			d.Path = j.rw.path(d.Path)
			_ = emit(helperEvent{Type: "diff", Diff: &d}) // a parent gone kills the helper
			return nil
		},
	}
	diffs, err := Verify(context.Background(), j.archive, j.procDest, vo)
	if err != nil {
		return nil, j.rw.err(err)
	}
	return json.Marshal(helperVerifyResp{Differences: len(diffs)})
}
