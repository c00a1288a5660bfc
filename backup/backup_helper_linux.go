package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"sync"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/archiver"

	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/userns"
)

// helperOpBackup is the helper operation of a rootless backup.
const helperOpBackup = "backup.backup"

func init() {
	userns.RegisterHelperOp(helperOpBackup, serveBackupHelper)
}

// NewRootless returns an [Archiver] that reads the tree from inside a
// helper user namespace, as [RestoreRootless] writes one: an unprivileged
// caller who owns the host ids of opts.UIDMap and opts.GIDMap as
// subordinate ranges (/etc/subuid, /etc/subgid) backs up the rootfs of its
// rootless container, root-only files (etc/shadow, etc/gshadow) included,
// which it could not read itself. The helper maps the caller's own id to 0
// and the host ids of the maps after it (newuidmap and newgidmap check the
// ranges); being root of that namespace, it reads every file whose owner
// and group it maps, and the kernel shows owners, ACL ids and rootids as
// helper ids, translated back to container ids. The archive is the same
// as root's with the same maps.
//
// Errors before the helper starts: [ErrHelperNoMap] without maps,
// [ErrHelperMap] when a host id of the maps is neither the caller's own
// nor in its ranges, a missing newuidmap ([os/exec.ErrNotFound]).
// Options.Verify reads the tree back through a helper too
// ([VerifyRootless]).
func NewRootless(opts Options, ro RootlessOptions) *Archiver {
	a := New(opts)
	a.rootless = &ro
	return a
}

// helperBackupReq is the request of the backup operation: the tree and
// the archive are descriptors the helper inherited, checked by device and
// inode; the maps are those of the helper's view.
type helperBackupReq struct {
	RootFD   int    `json:"root_fd"`
	RootDev  uint64 `json:"root_dev"`
	RootIno  uint64 `json:"root_ino"`
	RootPath string `json:"root_path"`
	OutFD    int    `json:"out_fd"`
	OutDev   uint64 `json:"out_dev"`
	OutIno   uint64 `json:"out_ino"`
	// ExcludeDev and ExcludeIno name the archive file when it lies in
	// the tree (never archived).
	ExcludeDev    uint64              `json:"exclude_dev,omitempty"`
	ExcludeIno    uint64              `json:"exclude_ino,omitempty"`
	UIDMap        string              `json:"uid_map"`
	GIDMap        string              `json:"gid_map"`
	ForeignCaps   archive.ForeignCaps `json:"foreign_caps,omitempty"`
	Compression   archive.Compression `json:"compression,omitempty"`
	CompressLevel int                 `json:"compress_level,omitempty"`
	Tool          string              `json:"tool,omitempty"`
	Workers       int                 `json:"workers,omitempty"`
	Exclude       []string            `json:"exclude,omitempty"`
	OneFileSystem bool                `json:"one_file_system,omitempty"`
	// ShownUIDMap and ShownGIDMap are the maps as the caller gave them,
	// for the archive's global header (UIDMap is the helper's view).
	ShownUIDMap string `json:"shown_uid_map"`
	ShownGIDMap string `json:"shown_gid_map"`
}

// helperBackupResp is the result of the backup operation.
type helperBackupResp struct {
	Summary archive.Summary `json:"summary"`
	Failed  []string        `json:"failed,omitempty"` // the items of an archive.IncompleteError, as "PATH\x00MESSAGE"
}

// writeHelper is write through a helper (see [NewRootless]). The helper
// translates with its own view of the maps, and records the caller's in
// the archive's global header.
func (a *Archiver) writeHelper(ctx context.Context, w io.Writer, root string, exclude archiver.FileID) (archive.Summary, error) {
	opts := a.opts
	if opts.UIDMap.IsZero() {
		return archive.Summary{}, ErrHelperNoMap
	}
	ro := a.rootless
	subuid, subgid := ro.SubUIDFile, ro.SubGIDFile
	if subuid == "" {
		subuid = "/etc/subuid"
	}
	if subgid == "" {
		subgid = "/etc/subgid"
	}
	hUID, inUID, err := helperMapFor(opts.UIDMap, uint32(os.Getuid()), subuid, "uid")
	if err != nil {
		return archive.Summary{}, err
	}
	hGID, inGID, err := helperMapFor(opts.GIDMap, uint32(os.Getgid()), subgid, "gid")
	if err != nil {
		return archive.Summary{}, err
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return archive.Summary{}, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rfd)

	// The archive: a file's own descriptor, or a pipe copied to w.
	var ofd int
	var copyDone chan error
	var pipeR, pipeW *os.File
	if f, ok := w.(*os.File); ok {
		ofd = int(f.Fd())
	} else {
		if pipeR, pipeW, err = os.Pipe(); err != nil {
			return archive.Summary{}, err
		}
		ofd = int(pipeW.Fd())
		copyDone = make(chan error, 1)
		go func() {
			_, err := io.Copy(w, pipeR)
			pipeR.Close()
			copyDone <- err
		}()
	}
	closePipe := func() error {
		if copyDone == nil {
			return nil
		}
		pipeW.Close()
		return <-copyDone
	}

	req := helperBackupReq{
		RootPath: root, UIDMap: inUID.String(), GIDMap: inGID.String(), ForeignCaps: opts.ForeignCaps,
		ShownUIDMap: opts.UIDMap.String(), ShownGIDMap: opts.GIDMap.String(),
		Compression: opts.Compression, CompressLevel: opts.CompressLevel, Tool: opts.Tool, Workers: opts.Workers,
		Exclude: opts.Exclude, OneFileSystem: opts.OneFileSystem, ExcludeDev: exclude.Dev, ExcludeIno: exclude.Ino,
	}
	var st unix.Stat_t
	if err := unix.Fstat(rfd, &st); err != nil {
		_ = closePipe()
		return archive.Summary{}, &fs.PathError{Op: "fstat", Path: root, Err: err}
	}
	req.RootDev, req.RootIno = st.Dev, st.Ino
	if err := unix.Fstat(ofd, &st); err != nil {
		_ = closePipe()
		return archive.Summary{}, &fs.PathError{Op: "fstat", Path: "archive", Err: err}
	}
	req.OutDev, req.OutIno = st.Dev, st.Ino

	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rep := opts.Reporter
	ew := &eventWriter{out: ro.Stderr, abort: cancel, handle: func(ev helperEvent) error {
		switch ev.Type {
		case "start":
			rep.StartFile(ev.Path)
		case "item":
			rep.CompleteItem(ev.Path, ev.Action, archive.ItemStats{Size: ev.Size, Caps: ev.Caps})
		case "warning":
			rep.Warn(ev.Path, ev.err())
		case "error":
			return rep.Error(ev.Path, ev.err())
		}
		return nil
	}}
	h, err := startWithFDs(hctx, userns.HelperOptions{UIDMap: hUID, GIDMap: hGID, SubUIDFile: subuid, SubGIDFile: subgid, Stderr: ew},
		[]int{rfd, ofd}, []*int{&req.RootFD, &req.OutFD})
	if err != nil {
		_ = closePipe()
		if errors.Is(err, userns.ErrUnmapped) || errors.Is(err, userns.ErrNoSubID) {
			return archive.Summary{}, fmt.Errorf("%w: uid map %s, gid map %s: %w", ErrHelperMap, opts.UIDMap, opts.GIDMap, err)
		}
		return archive.Summary{}, fmt.Errorf("back up through a helper user namespace: %w", err)
	}
	var resp helperBackupResp
	callErr := h.Call(helperOpBackup, req, &resp)
	closeErr := h.Close()
	ew.flush()
	copyErr := closePipe()
	sum := resp.Summary
	switch {
	case ew.aborted() != nil:
		return sum, ew.aborted()
	case ctx.Err() != nil:
		return sum, ctx.Err()
	case callErr != nil:
		return sum, helperCallError(callErr)
	case closeErr != nil:
		return sum, closeErr
	case copyErr != nil:
		return sum, fmt.Errorf("write archive: %w", copyErr)
	}
	if len(resp.Failed) > 0 {
		ie := &archive.IncompleteError{}
		for _, f := range resp.Failed {
			p, msg, _ := cutNUL(f)
			ie.Items = append(ie.Items, archive.ItemError{Path: p, Err: errors.New(msg)})
		}
		return sum, ie
	}
	return sum, nil
}

func cutNUL(s string) (before, after string, ok bool) {
	for i := range len(s) {
		if s[i] == 0 {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// serveBackupHelper runs in the helper: it archives the inherited tree
// into the inherited archive and sends the events on stderr.
func serveBackupHelper(raw json.RawMessage) (json.RawMessage, error) {
	var req helperBackupReq
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, err
	}
	rfile, err := inherited(req.RootFD, req.RootDev, req.RootIno, req.RootPath)
	if err != nil {
		return nil, err
	}
	defer rfile.Close()
	ofile, err := inherited(req.OutFD, req.OutDev, req.OutIno, "archive")
	if err != nil {
		return nil, err
	}
	defer ofile.Close()
	var uid, gid userns.Map
	if err := uid.UnmarshalText([]byte(req.UIDMap)); err != nil {
		return nil, err
	}
	if err := gid.UnmarshalText([]byte(req.GIDMap)); err != nil {
		return nil, err
	}
	var shownUID, shownGID userns.Map
	if err := shownUID.UnmarshalText([]byte(req.ShownUIDMap)); err != nil {
		return nil, err
	}
	if err := shownGID.UnmarshalText([]byte(req.ShownGIDMap)); err != nil {
		return nil, err
	}
	procRoot := "/proc/self/fd/" + strconv.Itoa(req.RootFD)
	rw := pathRewriter{from: procRoot, to: req.RootPath}
	enc := json.NewEncoder(os.Stderr)
	var mu sync.Mutex
	emit := func(ev helperEvent) {
		mu.Lock()
		defer mu.Unlock()
		// The parent reads these lines; with it gone there is no one
		// to tell of a failed write.
		_, _ = os.Stderr.WriteString(helperEventPrefix)
		_ = enc.Encode(ev)
	}
	opts := Options{
		UIDMap: uid, GIDMap: gid, ForeignCaps: req.ForeignCaps, Compression: req.Compression, CompressLevel: req.CompressLevel,
		Tool: req.Tool, Workers: req.Workers, Exclude: req.Exclude, OneFileSystem: req.OneFileSystem,
		Reporter: helperReporter{emit: emit, rw: rw},
	}
	x := archiver.Extra{Exclude: archiver.FileID{Dev: req.ExcludeDev, Ino: req.ExcludeIno}, MetaUIDMap: shownUID, MetaGIDMap: shownGID}
	sum, err := archiver.Write(context.Background(), ofile, procRoot, opts, x)
	resp := helperBackupResp{Summary: sum}
	var ie *archive.IncompleteError
	if errors.As(err, &ie) {
		for _, it := range ie.Items {
			resp.Failed = append(resp.Failed, it.Path+"\x00"+rw.text(it.Err.Error()))
		}
		err = nil
	}
	if err != nil {
		return nil, rw.err(err)
	}
	return json.Marshal(resp)
}
