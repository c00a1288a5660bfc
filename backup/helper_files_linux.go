//go:build linux

package backup

import (
	"encoding/json"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/internal/jobstate"
	"github.com/nscap/nscap/internal/restorer"
	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/userns"
)

// helperFiles are the descriptors a restore or verify hands its helper:
// the archive, dest and the caller's state directory.
type helperFiles struct {
	files    []*os.File // the helper's extra files, by index
	own      []*os.File // the caller's descriptors, closed by close
	pipeR    *os.File   // the read end of the archive pipe, or nil
	copyDone chan error // the end of the copy into the pipe, or nil
}

// openHelperFiles opens dest (made for a restore), the state directory
// and the archive (a file's own descriptor, or a pipe fed from
// run.archive), and records their identities in req.
func openHelperFiles(run helperRun, req *helperReq) (*helperFiles, error) {
	open := func(dir string) (int, error) {
		return unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if run.op == helperOpRestore {
		open = restorer.OpenOrMakeDest
	}
	dfd, err := open(run.dest)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: run.dest, Err: err}
	}
	hf := &helperFiles{}
	dest := os.NewFile(uintptr(dfd), run.dest)
	hf.own = append(hf.own, dest)
	// The caller's state directory, handed over as a descriptor: the
	// helper, root of a namespace of its own, has no home of its own, and
	// the caller's is where the next restore (direct or through a helper)
	// looks for the state of this one.
	sfd, _, err := jobstate.DirFor(run.stateDir, "restore", run.op == helperOpRestore)
	if err != nil && run.op == helperOpRestore {
		hf.close()
		return nil, err
	}
	var state *os.File
	if err == nil {
		state = os.NewFile(uintptr(sfd), "state directory")
		hf.own = append(hf.own, state)
	}
	archive, err := hf.archive(run.archive)
	if err != nil {
		hf.close()
		return nil, err
	}
	hf.files = []*os.File{helperFileArchive: archive, helperFileDest: dest}
	if err := helperFileID(archive, "archive", &req.ArchiveDev, &req.ArchiveIno); err != nil {
		hf.close()
		return nil, err
	}
	if err := helperFileID(dest, run.dest, &req.DestDev, &req.DestIno); err != nil {
		hf.close()
		return nil, err
	}
	if state != nil {
		if err := helperFileID(state, "state directory", &req.StateDev, &req.StateIno); err != nil {
			hf.close()
			return nil, err
		}
		req.State = true
		hf.files = append(hf.files, state)
	}
	return hf, nil
}

// archive returns r as a file for the helper: r itself when it is an
// *os.File, else the read end of a pipe that a goroutine fills from r.
func (hf *helperFiles) archive(r io.Reader) (*os.File, error) {
	if f, ok := r.(*os.File); ok {
		return f, nil
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	hf.pipeR = pr
	hf.copyDone = make(chan error, 1)
	go func() {
		_, err := io.Copy(pw, r)
		pw.Close()
		hf.copyDone <- err
	}()
	return pr, nil
}

// started closes the caller's read end of the archive pipe once the
// helper has its own: the copy must see EPIPE when the helper is gone.
func (hf *helperFiles) started() {
	if hf.pipeR != nil {
		hf.pipeR.Close()
		hf.pipeR = nil
	}
}

// close closes the caller's descriptors and waits for the copy into the
// archive pipe, which fails with EPIPE once no one reads it.
func (hf *helperFiles) close() {
	hf.started()
	for _, f := range hf.own {
		f.Close()
	}
	hf.own = nil
	if hf.copyDone != nil {
		<-hf.copyDone //nolint:errcheck // the EPIPE of a copy to a dead helper is expected
		hf.copyDone = nil
	}
}

// helperFileID stores the device and inode of f (named what) through dev and
// ino.
func helperFileID(f *os.File, what string, dev, ino *uint64) error {
	st, err := sys.Fstat(int(f.Fd()))
	if err != nil {
		return &fs.PathError{Op: "fstat", Path: what, Err: err}
	}
	*dev, *ino = st.Dev, st.Ino
	return nil
}

// helperJob is a restore or verify as the helper sees it: the request,
// the inherited descriptors checked, and the maps decoded.
type helperJob struct {
	req      helperReq
	archive  *os.File
	procDest string // dest as the helper reaches it
	stateDir string // the caller's state directory, or ""
	rw       pathRewriter
	// maps are UIDMap, GIDMap, SourceUIDMap, SourceGIDMap, ShownUIDMap
	// and ShownGIDMap of the request.
	maps [6]userns.Map
}

// openHelperJob decodes the request raw and checks the descriptors it
// names, in the helper.
func openHelperJob(raw json.RawMessage) (*helperJob, error) {
	j := &helperJob{}
	req := &j.req
	if err := json.Unmarshal(raw, req); err != nil {
		return nil, err
	}
	var err error
	if j.archive, err = inherited(helperFileArchive, req.ArchiveDev, req.ArchiveIno, "archive"); err != nil {
		return nil, err
	}
	dest, err := inherited(helperFileDest, req.DestDev, req.DestIno, req.DestPath)
	if err != nil {
		return nil, err
	}
	j.procDest = sys.ProcFdPath(int(dest.Fd()))
	j.rw = pathRewriter{from: j.procDest, to: req.DestPath}
	if req.State {
		state, err := inherited(helperFileState, req.StateDev, req.StateIno, "state directory")
		if err != nil {
			return nil, err
		}
		j.stateDir = sys.ProcFdPath(int(state.Fd()))
	}
	for i, s := range []string{req.UIDMap, req.GIDMap, req.SourceUIDMap, req.SourceGIDMap, req.ShownUIDMap, req.ShownGIDMap} {
		if err := j.maps[i].UnmarshalText([]byte(s)); err != nil {
			return nil, err
		}
	}
	return j, nil
}
