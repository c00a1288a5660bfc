package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/internal/archiver"
	"github.com/nscap/nscap/internal/sys"
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

// The extra files of a backup helper, by index: the tree and the archive.
const (
	helperFileRoot = iota
	helperFileOut
)

// helperBackupReq is the request of the backup operation: the tree and
// the archive are extra files of the helper, checked by device and inode;
// the maps are those of the helper's view.
type helperBackupReq struct {
	RootDev  uint64 `json:"root_dev"`
	RootIno  uint64 `json:"root_ino"`
	RootPath string `json:"root_path"`
	OutDev   uint64 `json:"out_dev"`
	OutIno   uint64 `json:"out_ino"`
	// ExcludeDev and ExcludeIno name the archive file when it lies in
	// the tree (never archived).
	ExcludeDev    uint64      `json:"exclude_dev,omitempty"`
	ExcludeIno    uint64      `json:"exclude_ino,omitempty"`
	UIDMap        string      `json:"uid_map"`
	GIDMap        string      `json:"gid_map"`
	ForeignCaps   ForeignCaps `json:"foreign_caps,omitempty"`
	Compression   Compression `json:"compression,omitempty"`
	CompressLevel int         `json:"compress_level,omitempty"`
	Tool          string      `json:"tool,omitempty"`
	Workers       int         `json:"workers,omitempty"`
	Exclude       []string    `json:"exclude,omitempty"`
	OneFileSystem bool        `json:"one_file_system,omitempty"`
	// ShownUIDMap and ShownGIDMap are the maps as the caller gave them,
	// for the archive's global header (UIDMap is the helper's view).
	ShownUIDMap string `json:"shown_uid_map"`
	ShownGIDMap string `json:"shown_gid_map"`
}

// helperBackupResp is the result of the backup operation.
type helperBackupResp struct {
	Summary Summary  `json:"summary"`
	Failed  []string `json:"failed,omitempty"` // the items of an IncompleteError, as "PATH\x00MESSAGE"
}

// writeHelper is write through a helper (see [NewRootless]). The helper
// translates with its own view of the maps, and records the caller's in
// the archive's global header.
func (a *Archiver) writeHelper(ctx context.Context, w io.Writer, root string, exclude archiver.FileID) (Summary, error) {
	opts := a.opts
	if opts.UIDMap.IsZero() {
		return Summary{}, ErrHelperNoMap
	}
	ro := *a.rootless
	v, err := helperMaps(opts.UIDMap, opts.GIDMap, ro)
	if err != nil {
		return Summary{}, err
	}
	req := helperBackupReq{
		RootPath: root, UIDMap: v.inUID.String(), GIDMap: v.inGID.String(), ForeignCaps: opts.ForeignCaps,
		ShownUIDMap: opts.UIDMap.String(), ShownGIDMap: opts.GIDMap.String(),
		Compression: opts.Compression, CompressLevel: opts.CompressLevel, Tool: opts.Tool, Workers: opts.Workers,
		Exclude: opts.Exclude, OneFileSystem: opts.OneFileSystem, ExcludeDev: exclude.Dev, ExcludeIno: exclude.Ino,
	}
	out, err := openBackupFiles(root, w, &req)
	if err != nil {
		return Summary{}, err
	}
	h, err := startHelper(ctx, v, ro, out.files, "back up")
	if err != nil {
		_ = out.close()
		return Summary{}, err
	}
	rep := opts.Reporter
	events := &eventHandler{handle: func(ev helperEvent) error {
		switch ev.Type {
		case "start":
			rep.StartFile(ev.Path)
		case "item":
			rep.CompleteItem(ev.Path, ev.Action, ItemStats{Size: ev.Size, Caps: ev.Caps})
		case "warning":
			rep.Warn(ev.Path, ev.err())
		case "error":
			return rep.Error(ev.Path, ev.err())
		}
		return nil
	}}
	var resp helperBackupResp
	callErr := h.CallEvents(helperOpBackup, req, &resp, events.fn())
	closeErr := h.Close()
	copyErr := out.close()
	sum := resp.Summary
	switch {
	case events.aborted != nil:
		return sum, events.aborted
	case ctx.Err() != nil:
		return sum, ctx.Err()
	case callErr != nil:
		return sum, helperCallError(callErr)
	case closeErr != nil:
		return sum, closeErr
	case copyErr != nil:
		return sum, fmt.Errorf("write archive: %w", copyErr)
	}
	return sum, resp.incomplete()
}

// backupFiles are the descriptors a backup hands its helper: the tree
// and the archive (a file's own descriptor, or a pipe copied to the
// caller's writer).
type backupFiles struct {
	files    []*os.File
	root     *os.File
	pipeW    *os.File   // the write end of the archive pipe, or nil
	copyDone chan error // the end of the copy from the pipe, or nil
}

// openBackupFiles opens the tree root and the archive w for the helper
// and records their identities in req.
func openBackupFiles(root string, w io.Writer, req *helperBackupReq) (*backupFiles, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	bf := &backupFiles{root: os.NewFile(uintptr(rfd), root)}
	out, ok := w.(*os.File)
	if !ok {
		pipeR, pipeW, err := os.Pipe()
		if err != nil {
			bf.root.Close()
			return nil, err
		}
		out, bf.pipeW = pipeW, pipeW
		bf.copyDone = make(chan error, 1)
		go func() {
			_, err := io.Copy(w, pipeR)
			pipeR.Close()
			bf.copyDone <- err
		}()
	}
	bf.files = []*os.File{helperFileRoot: bf.root, helperFileOut: out}
	if err := helperFileID(bf.root, root, &req.RootDev, &req.RootIno); err != nil {
		_ = bf.close()
		return nil, err
	}
	if err := helperFileID(out, "archive", &req.OutDev, &req.OutIno); err != nil {
		_ = bf.close()
		return nil, err
	}
	return bf, nil
}

// close closes the caller's descriptors and returns the error of the copy
// from the archive pipe.
func (bf *backupFiles) close() error {
	bf.root.Close()
	if bf.copyDone == nil {
		return nil
	}
	bf.pipeW.Close()
	return <-bf.copyDone
}

// incomplete returns the [*IncompleteError] of the items that failed in
// the helper, or nil.
func (resp helperBackupResp) incomplete() error {
	if len(resp.Failed) == 0 {
		return nil
	}
	ie := &IncompleteError{}
	for _, f := range resp.Failed {
		p, msg, _ := cutNUL(f)
		ie.Items = append(ie.Items, ItemError{Path: p, Err: errors.New(msg)})
	}
	return ie
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
// into the inherited archive and emits the events.
func serveBackupHelper(raw json.RawMessage, emit userns.HelperEmit) (json.RawMessage, error) {
	var req helperBackupReq
	if err := json.Unmarshal(raw, &req); err != nil {
		return nil, err
	}
	rfile, err := inherited(helperFileRoot, req.RootDev, req.RootIno, req.RootPath)
	if err != nil {
		return nil, err
	}
	ofile, err := inherited(helperFileOut, req.OutDev, req.OutIno, "archive")
	if err != nil {
		return nil, err
	}
	var maps [4]userns.Map
	for i, s := range []string{req.UIDMap, req.GIDMap, req.ShownUIDMap, req.ShownGIDMap} {
		if err := maps[i].UnmarshalText([]byte(s)); err != nil {
			return nil, err
		}
	}
	procRoot := sys.ProcFdPath(int(rfile.Fd()))
	rw := pathRewriter{from: procRoot, to: req.RootPath}
	opts := Options{
		UIDMap: maps[0], GIDMap: maps[1], ForeignCaps: req.ForeignCaps, Compression: req.Compression, CompressLevel: req.CompressLevel,
		Tool: req.Tool, Workers: req.Workers, Exclude: req.Exclude, OneFileSystem: req.OneFileSystem,
		Reporter: helperReporter{emit: emit, rw: rw, archiveNames: true},
	}
	x := archiver.Extra{Exclude: archiver.FileID{Dev: req.ExcludeDev, Ino: req.ExcludeIno}, MetaUIDMap: maps[2], MetaGIDMap: maps[3]}
	sum, err := archiver.Write(context.Background(), ofile, procRoot, opts, x)
	// The archive is complete: close the helper's end, so that a pipe
	// to the caller reaches its end when the helper is done.
	ofile.Close()
	resp := helperBackupResp{Summary: sum}
	var ie *IncompleteError
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
