//go:build linux

package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/restorer"

	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/internal/jobstate"
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
	// SubUIDFile and SubGIDFile default to /etc/subuid and /etc/subgid.
	SubUIDFile, SubGIDFile string
	// Stderr receives what the helper writes on its standard error other
	// than its progress events; nil discards it.
	Stderr io.Writer
}

// Helper operations, registered in init so that the re-executed helper
// (the same binary) serves them.
const (
	helperOpRestore = "backup.restore"
	helperOpVerify  = "backup.verify"
)

// helperEventPrefix starts each line of the helper's stderr that carries a
// progress event (JSON); other lines are passed to RootlessOptions.Stderr.
const helperEventPrefix = "\x1enscap-backup-event "

// helperFDMin is the lowest descriptor number given to the descriptors
// the helper inherits: above those that os/exec moves while setting up
// the child's fds 3 and 4.
const helperFDMin = 32

// helperReq is the request of the helper operations. The archive and the
// destination are descriptors the helper inherited, checked by device and
// inode; the maps are those of the helper's view (see [RestoreRootless]).
type helperReq struct {
	ArchiveFD  int    `json:"archive_fd"`
	ArchiveDev uint64 `json:"archive_dev"`
	ArchiveIno uint64 `json:"archive_ino"`
	DestFD     int    `json:"dest_fd"`
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
	// StateFD is the caller's state directory (see
	// [RestoreOptions.StateDir]), checked like dest; 0 when the caller
	// has none (a verify only).
	StateFD  int    `json:"state_fd,omitempty"`
	StateDev uint64 `json:"state_dev,omitempty"`
	StateIno uint64 `json:"state_ino,omitempty"`
}

// helperEvent is one progress event of a helper operation.
type helperEvent struct {
	Type   string      `json:"t"` // "item", "error", "diff"
	Path   string      `json:"path,omitempty"`
	Action Action      `json:"action,omitempty"`
	Size   int64       `json:"size,omitempty"`
	Caps   bool        `json:"caps,omitempty"` // a backup item stored a cap
	Op     string      `json:"op,omitempty"`   // of an *fs.PathError
	Msg    string      `json:"msg,omitempty"`
	Errno  int         `json:"errno,omitempty"`
	Diff   *Difference `json:"diff,omitempty"`
}

// helperVerifyResp is the result of the verify operation.
type helperVerifyResp struct {
	Differences int `json:"differences"`
}

func init() {
	userns.RegisterHelperOp(helperOpRestore, func(raw json.RawMessage) (json.RawMessage, error) {
		return serveHelper(raw, false)
	})
	userns.RegisterHelperOp(helperOpVerify, func(raw json.RawMessage) (json.RawMessage, error) {
		return serveHelper(raw, true)
	})
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
// goes; opts.Reporter and opts.Error are called from one goroutine at a
// time. An error returned by opts.Error kills the helper (what is not in
// place is swept by the next restore into dest) and is returned. Errors
// before the helper starts: [ErrHelperNoMap]; [ErrHelperMap] when a host
// id of the target maps is neither the caller's own nor in its
// subordinate ranges (nothing written); a missing newuidmap
// ([os/exec.ErrNotFound]); dest not a directory.
func RestoreRootless(ctx context.Context, r io.Reader, dest string, opts RestoreOptions, ro RootlessOptions) (RestoreSummary, error) {
	opts.ApplyDefaults()
	var sum RestoreSummary
	err := runHelper(ctx, helperOpRestore, r, dest, opts.UIDMap, opts.GIDMap, opts.SourceUIDMap, opts.SourceGIDMap, helperTuning{opts.Overwrite, opts.Workers, opts.Sparse, opts.XattrsInclude, opts.StateDir, opts.ForeignCaps, opts.Paths}, ro,
		func(ev helperEvent) error {
			switch ev.Type {
			case "item":
				opts.Reporter.CompleteItem(ev.Path, ev.Action, archive.ItemStats{Size: ev.Size, Caps: ev.Caps})
			case "warning":
				opts.Reporter.Warn(ev.Path, ev.err())
			case "error":
				return opts.Reporter.Error(ev.Path, ev.err())
			}
			return nil
		}, &sum)
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
	var resp helperVerifyResp
	err := runHelper(ctx, helperOpVerify, r, dest, opts.UIDMap, gid, opts.SourceUIDMap, sgid, helperTuning{xattrsInclude: opts.XattrsInclude, stateDir: opts.StateDir, foreignCaps: opts.ForeignCaps}, ro,
		func(ev helperEvent) error {
			if ev.Type != "diff" || ev.Diff == nil {
				return nil
			}
			diffs = append(diffs, *ev.Diff)
			if opts.Difference != nil {
				return opts.Difference(*ev.Diff)
			}
			return nil
		}, &resp)
	return diffs, err
}

// helperTuning is what a restore in the helper takes of RestoreOptions
// besides the maps.
type helperTuning struct {
	overwrite     OverwritePolicy
	workers       int
	sparse        bool
	xattrsInclude []string
	stateDir      string // RestoreOptions.StateDir
	foreignCaps   ForeignCaps
	paths         []string // RestoreOptions.Paths
}

// runHelper starts a helper with the target maps (plus the caller's own
// ids), hands it the archive and dest, runs op and dispatches its events
// to handle, one at a time. An error returned by handle kills the helper
// and is returned.
func runHelper(ctx context.Context, op string, r io.Reader, dest string, uidMap, gidMap, srcUID, srcGID userns.Map,
	tune helperTuning, ro RootlessOptions, handle func(helperEvent) error, resp any,
) error {
	if uidMap.IsZero() {
		return ErrHelperNoMap
	}
	if gidMap.IsZero() {
		gidMap = uidMap
	}
	subuid, subgid := ro.SubUIDFile, ro.SubGIDFile
	if subuid == "" {
		subuid = "/etc/subuid"
	}
	if subgid == "" {
		subgid = "/etc/subgid"
	}
	hUID, inUID, err := helperMapFor(uidMap, uint32(os.Getuid()), subuid, "uid")
	if err != nil {
		return err
	}
	hGID, inGID, err := helperMapFor(gidMap, uint32(os.Getgid()), subgid, "gid")
	if err != nil {
		return err
	}

	open := func(dir string) (int, error) {
		return unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if op == helperOpRestore {
		open = restorer.OpenOrMakeDest
	}
	dfd, err := open(dest)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dest, Err: err}
	}
	defer unix.Close(dfd)
	// The caller's state directory, handed over as a descriptor: the
	// helper, root of a namespace of its own, has no home of its own, and
	// the caller's is where the next restore (direct or through a helper)
	// looks for the state of this one.
	sfd, _, err := jobstate.DirFor(tune.stateDir, "restore", op == helperOpRestore)
	if err != nil {
		if op == helperOpRestore {
			return err
		}
		sfd = -1 // a verify without a state to look at
	}
	if sfd >= 0 {
		defer unix.Close(sfd)
	}

	// The archive: a file's own descriptor, or a pipe fed from r.
	var afd int
	var copyDone chan error
	var pipeR, pipeW *os.File
	if f, ok := r.(*os.File); ok {
		afd = int(f.Fd())
	} else {
		pr, pw, err := os.Pipe()
		if err != nil {
			return err
		}
		pipeR, pipeW = pr, pw
		afd = int(pr.Fd())
		copyDone = make(chan error, 1)
		go func() {
			_, err := io.Copy(pw, r)
			pw.Close()
			copyDone <- err
		}()
	}
	waitCopy := func() {
		if copyDone != nil {
			// The helper is gone: a blocked write fails with EPIPE.
			<-copyDone //nolint:errcheck // the EPIPE of a copy to a dead helper is expected
		}
	}

	req := helperReq{
		DestPath: dest, UIDMap: inUID.String(), GIDMap: inGID.String(),
		SourceUIDMap: srcUID.String(), SourceGIDMap: srcGID.String(), Overwrite: tune.overwrite, Workers: tune.workers, Sparse: tune.sparse, XattrsInc: tune.xattrsInclude, ForeignCaps: tune.foreignCaps, Paths: tune.paths,
		ShownUIDMap: uidMap.String(), ShownGIDMap: gidMap.String(),
	}
	var st unix.Stat_t
	if err := unix.Fstat(afd, &st); err != nil {
		pipeR.Close()
		pipeW.Close()
		waitCopy()
		return &fs.PathError{Op: "fstat", Path: "archive", Err: err}
	}
	req.ArchiveDev, req.ArchiveIno = st.Dev, st.Ino
	if err := unix.Fstat(dfd, &st); err != nil {
		pipeR.Close()
		pipeW.Close()
		waitCopy()
		return &fs.PathError{Op: "fstat", Path: dest, Err: err}
	}
	req.DestDev, req.DestIno = st.Dev, st.Ino
	fds, nums := []int{afd, dfd}, []*int{&req.ArchiveFD, &req.DestFD}
	if sfd >= 0 {
		if err := unix.Fstat(sfd, &st); err != nil {
			pipeR.Close()
			pipeW.Close()
			waitCopy()
			return &fs.PathError{Op: "fstat", Path: "state directory", Err: err}
		}
		req.StateDev, req.StateIno = st.Dev, st.Ino
		fds, nums = append(fds, sfd), append(nums, &req.StateFD)
	}

	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	handle = withUnmappedOwner(handle, hUID, hGID)
	ew := &eventWriter{out: ro.Stderr, handle: handle, abort: cancel}
	h, err := startWithFDs(hctx, userns.HelperOptions{UIDMap: hUID, GIDMap: hGID, SubUIDFile: subuid, SubGIDFile: subgid, Stderr: ew},
		fds, nums)
	// The helper has its own copy of the pipe's read end: the copy must
	// see EPIPE when the helper is gone.
	pipeR.Close()
	if err != nil {
		pipeW.Close()
		waitCopy()
		if errors.Is(err, userns.ErrUnmapped) || errors.Is(err, userns.ErrNoSubID) {
			return fmt.Errorf("%w: uid map %s, gid map %s: %w", ErrHelperMap, uidMap, gidMap, err)
		}
		return fmt.Errorf("restore through a helper user namespace: %w", err)
	}
	callErr := h.Call(op, req, resp)
	// Close waits for the helper and for its stderr, so every event has
	// been handled when it returns.
	closeErr := h.Close()
	ew.flush()
	waitCopy()
	if aerr := ew.aborted(); aerr != nil {
		return aerr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if callErr != nil {
		return helperCallError(callErr)
	}
	if closeErr != nil {
		return closeErr
	}
	return nil
}

// startWithFDs starts a helper that inherits the descriptors fds: each is
// duplicated without close-on-exec (at helperFDMin or above) for the time
// of the start, and its number in the helper is stored through nums.
// Other processes the caller starts meanwhile inherit them too, for their
// lifetime; os/exec offers no other way to pass descriptors through
// [userns.StartHelper].
func startWithFDs(ctx context.Context, ho userns.HelperOptions, fds []int, nums []*int) (*userns.Helper, error) {
	var dups []int
	defer func() {
		for _, d := range dups {
			unix.Close(d)
		}
	}()
	for i, fd := range fds {
		d, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD, helperFDMin)
		if err != nil {
			return nil, fmt.Errorf("duplicate descriptor %d: %w", fd, err)
		}
		dups = append(dups, d)
		*nums[i] = d
	}
	return userns.StartHelper(ctx, ho)
}

// helperMapFor returns the map of a helper namespace that reaches every
// host id of the target map m, and the target map as seen from inside that
// helper (container id -> helper id). The helper map puts the caller's own
// id self at 0 — only then is the re-executed helper root of its namespace
// with all capabilities in it — and the host ids of m, minus self, after it
// in m's order. A caller that is not root is checked first: each such host
// id must be in one of its subordinate ranges in subFile, as newuidmap(1)
// and newgidmap(1) will require; otherwise the error matches
// [ErrHelperMap] and [userns.ErrUnmapped] (or [userns.ErrNoSubID]).
func helperMapFor(m userns.Map, self uint32, subFile, kind string) (helper, inside userns.Map, err error) {
	type piece struct{ lo, n uint64 }
	var ext []userns.Extent
	ext = append(ext, userns.Extent{NsID: 0, HostID: self, Count: 1})
	var ranges []userns.SubIDRange
	var rangesErr error
	root := os.Geteuid() == 0
	if !root {
		name := ""
		if u, err := user.LookupId(strconv.FormatUint(uint64(os.Getuid()), 10)); err == nil {
			name = u.Username
		}
		ranges, rangesErr = userns.ReadSubID(subFile, name, uint32(os.Getuid()))
	}
	next := uint64(1)
	for i, e := range m.Extents() {
		lo, hi := uint64(e.HostID), uint64(e.HostID)+uint64(e.Count)
		var pieces []piece
		if s := uint64(self); s >= lo && s < hi {
			pieces = []piece{{lo, s - lo}, {s + 1, hi - s - 1}}
		} else {
			pieces = []piece{{lo, hi - lo}}
		}
		for _, p := range pieces {
			if p.n == 0 {
				continue
			}
			if !root {
				if rangesErr != nil {
					return userns.Map{}, userns.Map{}, fmt.Errorf("%w: %s map extent %d (%s) needs host ids %d-%d besides the caller's own id %d: %w",
						ErrHelperMap, kind, i, e, p.lo, p.lo+p.n-1, self, rangesErr)
				}
				if !inRanges(p.lo, p.n, ranges) {
					return userns.Map{}, userns.Map{}, fmt.Errorf("%w: %s map extent %d (%s): host ids %d-%d are not the caller's own id %d nor inside one of its ranges in %s (%s): %w",
						ErrHelperMap, kind, i, e, p.lo, p.lo+p.n-1, self, subFile, rangesText(ranges), userns.ErrUnmapped)
				}
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

// inRanges reports whether the n ids from lo lie in one of ranges.
func inRanges(lo, n uint64, ranges []userns.SubIDRange) bool {
	for _, r := range ranges {
		if lo >= uint64(r.Start) && lo+n <= uint64(r.Start)+uint64(r.Count) {
			return true
		}
	}
	return false
}

func rangesText(ranges []userns.SubIDRange) string {
	var parts []string
	for _, r := range ranges {
		parts = append(parts, fmt.Sprintf("%d-%d", r.Start, uint64(r.Start)+uint64(r.Count)-1))
	}
	return strings.Join(parts, ", ")
}

// eventWriter is the helper's stderr: it decodes event lines and passes
// the rest on. os/exec writes to it from one goroutine.
type eventWriter struct {
	out    io.Writer
	handle func(helperEvent) error
	abort  func()

	buf  []byte
	mu   sync.Mutex
	aerr error
}

func (w *eventWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(w.buf[:i+1])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *eventWriter) line(l []byte) {
	js, ok := bytes.CutPrefix(l, []byte(helperEventPrefix))
	if !ok {
		if w.out != nil {
			_, _ = w.out.Write(l) // a line of the helper's stderr, passed on as is
		}
		return
	}
	var ev helperEvent
	if err := json.Unmarshal(js, &ev); err != nil {
		if w.out != nil {
			fmt.Fprintf(w.out, "nscap: bad event from the helper: %v\n", err)
		}
		return
	}
	if w.aborted() != nil {
		return
	}
	if err := w.handle(ev); err != nil {
		w.mu.Lock()
		w.aerr = err
		w.mu.Unlock()
		w.abort()
	}
}

// flush handles an unterminated last line.
func (w *eventWriter) flush() {
	if len(w.buf) > 0 {
		w.line(w.buf)
	}
	w.buf = nil
}

func (w *eventWriter) aborted() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.aerr
}

// helperError is an error that crossed the helper boundary: its message,
// and the errno it wrapped (so errors.Is(err, unix.EPERM) still works).
type helperError struct {
	msg   string
	errno syscall.Errno
}

func (e *helperError) Error() string { return e.msg }

func (e *helperError) Unwrap() error {
	if e.errno == 0 {
		return nil
	}
	return e.errno
}

// err rebuilds the per-entry error of an "error" event.
func (ev helperEvent) err() error {
	inner := &helperError{msg: ev.Msg, errno: syscall.Errno(ev.Errno)}
	if ev.Op != "" {
		return &fs.PathError{Op: ev.Op, Path: ev.Path, Err: inner}
	}
	return inner
}

// helperCallError turns the error of the whole operation into one
// without the helper protocol's prefix, keeping its errno.
func helperCallError(err error) error {
	var he *userns.HelperOpError
	if errors.As(err, &he) {
		return &helperError{msg: he.Msg, errno: he.Errno}
	}
	return err
}

// serveHelper runs in the helper: it checks the inherited descriptors,
// restores (or verifies) through them and writes events to stderr.
func serveHelper(raw json.RawMessage, verify bool) (json.RawMessage, error) {
	var req helperReq
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, err
	}
	afile, err := inherited(req.ArchiveFD, req.ArchiveDev, req.ArchiveIno, "archive")
	if err != nil {
		return nil, err
	}
	defer afile.Close()
	dfile, err := inherited(req.DestFD, req.DestDev, req.DestIno, req.DestPath)
	if err != nil {
		return nil, err
	}
	defer dfile.Close()
	procDest := "/proc/self/fd/" + strconv.Itoa(req.DestFD)
	rw := pathRewriter{from: procDest, to: req.DestPath}
	var stateDir string
	if req.StateFD != 0 {
		sfile, err := inherited(req.StateFD, req.StateDev, req.StateIno, "state directory")
		if err != nil {
			return nil, err
		}
		defer sfile.Close()
		stateDir = "/proc/self/fd/" + strconv.Itoa(req.StateFD)
	}

	var maps [6]userns.Map
	for i, s := range []string{req.UIDMap, req.GIDMap, req.SourceUIDMap, req.SourceGIDMap, req.ShownUIDMap, req.ShownGIDMap} {
		if err := maps[i].UnmarshalText([]byte(s)); err != nil {
			return nil, err
		}
	}
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stderr)
	emit := func(ev helperEvent) {
		mu.Lock()
		defer mu.Unlock()
		// The parent reads these lines; with it gone there is no one
		// to tell of a failed write.
		_, _ = os.Stderr.WriteString(helperEventPrefix)
		_ = enc.Encode(ev)
	}
	ctx := context.Background()
	if verify {
		vo := VerifyOptions{
			UIDMap: maps[0], GIDMap: maps[1], SourceUIDMap: maps[2], SourceGIDMap: maps[3],
			XattrsInclude: req.XattrsInc, StateDir: stateDir, ForeignCaps: req.ForeignCaps,
			ShownUIDMap: maps[4], ShownGIDMap: maps[5],
			Difference: func(d Difference) error {
				d.Path = rw.path(d.Path)
				emit(helperEvent{Type: "diff", Diff: &d})
				return nil
			},
		}
		diffs, err := Verify(ctx, afile, procDest, vo)
		if err != nil {
			return nil, rw.err(err)
		}
		return json.Marshal(helperVerifyResp{Differences: len(diffs)})
	}
	opts := RestoreOptions{
		UIDMap: maps[0], GIDMap: maps[1], SourceUIDMap: maps[2], SourceGIDMap: maps[3],
		Overwrite: req.Overwrite, Workers: req.Workers, Sparse: req.Sparse, XattrsInclude: req.XattrsInc, StateDir: stateDir, ForeignCaps: req.ForeignCaps,
		Paths: req.Paths, ShownUIDMap: maps[4], ShownGIDMap: maps[5],
		Reporter: helperReporter{emit: emit, rw: rw},
	}
	sum, err := Restore(ctx, afile, procDest, opts)
	if err != nil {
		return nil, rw.err(err)
	}
	return json.Marshal(sum)
}

// inherited returns the descriptor fd the helper inherited, after checking
// that it is the file the caller described.
func inherited(fd int, dev, ino uint64, what string) (*os.File, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &fs.PathError{Op: "fstat", Path: what, Err: err}
	}
	if st.Dev != dev || st.Ino != ino {
		return nil, fmt.Errorf("%s: descriptor %d is not the file the caller opened", what, fd)
	}
	return os.NewFile(uintptr(fd), what), nil
}

// helperReporter sends the events of a backup or a restore run in the
// helper to the parent, paths and messages in the caller's words.
type helperReporter struct {
	emit func(helperEvent)
	rw   pathRewriter
}

// StartFile sends nothing: the parent counts completed items.
func (helperReporter) StartFile(string) {}

func (r helperReporter) CompleteItem(p string, a archive.Action, s archive.ItemStats) {
	r.emit(helperEvent{Type: "item", Path: r.rw.path(p), Action: a, Size: s.Size, Caps: s.Caps})
}

func (r helperReporter) Warn(p string, err error) { r.emit(r.event("warning", p, err)) }

func (r helperReporter) Error(p string, err error) error {
	r.emit(r.event("error", p, err))
	return nil
}

// event describes err about p as the parent rebuilds it (see
// helperEvent.err): the operation, the message and the errno.
func (r helperReporter) event(typ, p string, err error) helperEvent {
	ev := helperEvent{Type: typ, Path: r.rw.path(p), Msg: r.rw.text(err.Error())}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		ev.Op, ev.Path, ev.Msg = pe.Op, r.rw.path(pe.Path), r.rw.text(pe.Err.Error())
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		ev.Errno = int(errno)
	}
	return ev
}

// pathRewriter puts the caller's name of dest back in place of the
// helper's /proc/self/fd path.
type pathRewriter struct{ from, to string }

func (rw pathRewriter) path(p string) string {
	if p == rw.from {
		return rw.to
	}
	if rest, ok := strings.CutPrefix(p, rw.from+"/"); ok {
		return strings.TrimSuffix(rw.to, "/") + "/" + rest
	}
	return p
}

func (rw pathRewriter) text(s string) string {
	return strings.ReplaceAll(s, rw.from, strings.TrimSuffix(rw.to, "/"))
}

// err rewrites the message of err, keeping its errno.
func (rw pathRewriter) err(err error) error {
	e := &helperError{msg: rw.text(err.Error())}
	errors.As(err, &e.errno)
	return e
}

// withUnmappedOwner makes the EPERM or EACCES of an entry say which id
// is at fault when the inode refused has an owner or group outside the
// helper's maps: the helper's root has no privilege over such an inode
// (it sees it owned by the overflow id, 65534), and the errno alone does
// not tell the user why.
func withUnmappedOwner(handle func(helperEvent) error, hUID, hGID userns.Map) func(helperEvent) error {
	return func(ev helperEvent) error {
		if ev.Type == "error" && ev.Path != "" {
			if e := syscall.Errno(ev.Errno); e == syscall.EPERM || e == syscall.EACCES {
				ev.Msg += unmappedOwner(ev.Path, hUID, hGID)
			}
		}
		return handle(ev)
	}
}

// unmappedOwner returns ": its owner uid U is outside ..." when the owner
// or group of path, as the caller sees it, is not mapped by hUID or hGID;
// "" when both are, or path cannot be examined.
func unmappedOwner(path string, hUID, hGID userns.Map) string {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return ""
	}
	_, uerr := hUID.ToNs(st.Uid)
	_, gerr := hGID.ToNs(st.Gid)
	switch {
	case uerr != nil && gerr != nil:
		return fmt.Sprintf(" (owner uid %d and group gid %d are outside the helper user namespace, which maps uids %s and gids %s)", st.Uid, st.Gid, idRanges(hUID), idRanges(hGID))
	case uerr != nil:
		return fmt.Sprintf(" (owner uid %d is outside the helper user namespace, which maps uids %s)", st.Uid, idRanges(hUID))
	case gerr != nil:
		return fmt.Sprintf(" (group gid %d is outside the helper user namespace, which maps gids %s)", st.Gid, idRanges(hGID))
	}
	return ""
}

// idRanges lists the outside ids of m: "1000, 400000-465535".
func idRanges(m userns.Map) string {
	var parts []string
	for _, r := range m.HostRanges() {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ", ")
}
