package tarfmt

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// ErrTruncated is an archive that ends before its end-of-archive blocks:
// archive/tar takes a stream cut between two members, or inside the
// padding of one, for a complete archive (golang/go#12557), GNU tar and
// bsdtar do not.
var ErrTruncated = errors.New("tarfmt: truncated archive: no end-of-archive block")

// EndReader is the reader to give archive/tar: it keeps count of the zero
// bytes that end what was read, so that [EndReader.Check] can tell an
// archive that ends with its end-of-archive zero blocks from one cut
// short. It is no io.Seeker, so archive/tar reads (never seeks over)
// member data.
type EndReader struct {
	r     io.Reader
	n     int64 // bytes read
	zeros int64 // trailing zero bytes among them
}

// NewEndReader returns an EndReader of r (the decompressed stream).
func NewEndReader(r io.Reader) *EndReader { return &EndReader{r: r} }

// Read implements io.Reader.
func (t *EndReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.n += int64(n)
	i := n
	for i > 0 && p[i-1] == 0 {
		i--
	}
	if i == 0 {
		t.zeros += int64(n)
	} else {
		t.zeros = int64(n - i)
	}
	return n, err
}

// Truncated reports whether the data read so far, at archive/tar's
// io.EOF, lacks the end-of-archive zero block.
func (t *EndReader) Truncated() bool { return t.n > 0 && t.zeros < 512 }

// Check is called once archive/tar returned io.EOF. It fails on a
// truncated archive ([ErrTruncated]), then reads the stream to its end,
// so that the gzip or zstd decompressor checks its checksum and its
// length: a corrupt or cut compressed archive fails, as with GNU tar. A
// gzip stream followed by data that is not gzip is accepted, as gzip -d
// accepts it with a warning.
func (t *EndReader) Check() error {
	if t.Truncated() {
		return ErrTruncated
	}
	_, err := io.Copy(io.Discard, t.r)
	switch {
	case err == nil, errors.Is(err, gzip.ErrHeader):
		return nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("compressed stream cut short: %w", err)
	}
	return fmt.Errorf("after the end of the archive: %w", err)
}
