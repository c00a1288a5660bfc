package cli

import (
	"io"
	"os"
	"time"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/internal/ui"
	"github.com/nscap/nscap/userns"
)

// archiveInput is the ARCHIVE argument of list, restore and verify, open,
// with the maps its members are translated with.
type archiveInput struct {
	// R is the reader to pass to the engine: stdin as it is for "-" (a
	// helper then inherits its descriptor), else the opened file.
	R io.Reader
	// UID and GID are the target maps, SrcUID and SrcGID the source
	// maps of an archive of raw host ids.
	UID, GID, SrcUID, SrcGID userns.Map

	maps  *targetMapFlags
	close func() error
}

// openArchive resolves the map flags m and opens the archive name ("-":
// stdin). Close releases it.
func openArchive(ios *IOStreams, name string, m *targetMapFlags) (*archiveInput, error) {
	uid, gid, suid, sgid, err := m.resolve()
	if err != nil {
		return nil, err
	}
	a := &archiveInput{R: ios.In, UID: uid, GID: gid, SrcUID: suid, SrcGID: sgid, maps: m, close: func() error { return nil }}
	if name == "-" {
		return a, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	a.R, a.close = f, f.Close
	return a, nil
}

// Close closes the archive file (not stdin).
func (a *archiveInput) Close() error { return a.close() }

// listOptions are the options of backup.List for the maps and the
// --foreign-caps and --host-scope policies the flags give.
func (a *archiveInput) listOptions() backup.ListOptions {
	return backup.ListOptions{
		UIDMap: a.UID, GIDMap: a.GID, SourceUIDMap: a.SrcUID, SourceGIDMap: a.SrcGID,
		ForeignCaps: a.maps.ForeignCaps, HostScope: a.maps.HostScope,
	}
}

// newArchiveProgress returns the progress line of a command reading the
// archive through r (a file, or stdin), and the reader to use instead of r,
// which counts the bytes read. The total is the size of an archive that is
// a regular file (compressed as it is stored): percent and ETA are those
// of the archive read, as pv shows them. off (quiet, --no-progress,
// --json) or stderr not a terminal: nothing is drawn and r is returned.
func newArchiveProgress(ios *IOStreams, label string, r io.Reader, off bool) (*ui.Progress, io.Reader) {
	interval := time.Duration(0)
	if !off {
		interval = ui.Interval(false, false, ios.IsStderrTTY)
	}
	p := ui.NewProgress(ios.ErrOut, label, interval)
	if interval == 0 {
		return p, r
	}
	p.SetWidth(ui.Width(ios.ErrOut))
	p.SetBytesNoun("of archive")
	if f, ok := r.(*os.File); ok {
		// stdin too, when it is a file (nscap restore - DEST <ct.tar).
		fi, err := f.Stat()
		pos, perr := f.Seek(0, io.SeekCurrent)
		if err == nil && perr == nil && fi.Mode().IsRegular() && fi.Size() > pos {
			p.SetTotal(0, fi.Size()-pos, true)
		}
	}
	return p, &countingReader{r: r, p: p}
}

// countingReader adds the bytes read through it to a progress line.
type countingReader struct {
	r io.Reader
	p *ui.Progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.Add(0, int64(n))
	return n, err
}
