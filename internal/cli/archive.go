package cli

import (
	"io"
	"os"
	"time"

	"github.com/nscap/nscap/internal/ui"
)

// archiveReader returns the archive argument as the reader to pass to the
// engine: stdin as it is for "-" (a helper then inherits its descriptor),
// else the opened file.
func archiveReader(ios *IOStreams, name string) (io.Reader, func() error, error) {
	if name == "-" {
		return ios.In, func() error { return nil }, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
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
