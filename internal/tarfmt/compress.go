package tarfmt

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression magic numbers, sniffed from the first bytes of an archive.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// MaxZstdWindow bounds the memory a zstd frame header may ask for: every
// level zstd uses without --long fits in 8 MiB, and a hostile header
// claiming gigabytes must not make the reader allocate them. The decoder
// may use at most 4 times this much.
const MaxZstdWindow = 16 << 20

// SniffLen is how many bytes of a file [Sniff] looks at: one tar block.
const SniffLen = 512

// HeaderError is a gzip or zstd stream whose header does not decode: the
// data is not what its magic number says (or could not be read).
type HeaderError struct {
	Compression string // "gzip" or "zstd"
	Err         error  // the decompressor's error
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("read %s header: %v", e.Compression, e.Err)
}

// Unwrap returns the decompressor's error.
func (e *HeaderError) Unwrap() error { return e.Err }

// Decompress detects the compression of r from its first bytes and
// returns a reader of the decompressed data: gzip (every member of a
// multi-member stream) or zstd (one decoder goroutine, low memory, a
// window of at most [MaxZstdWindow]), anything else read as it is. closeFn
// releases the decompressor; it does not close r. A gzip header that does
// not decode is a *[HeaderError] (zstd reads its frame header on the
// first Read, which returns that error); an error reading r is returned
// as it is.
func Decompress(r io.Reader) (dr io.Reader, closeFn func(), err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(zstdMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	switch {
	case bytes.HasPrefix(head, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, &HeaderError{Compression: "gzip", Err: err}
		}
		zr.Multistream(true)
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(head, zstdMagic):
		zr, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(MaxZstdWindow),
			zstd.WithDecoderMaxMemory(4*MaxZstdWindow))
		if err != nil {
			return nil, nil, &HeaderError{Compression: "zstd", Err: err}
		}
		return zr, zr.Close, nil
	}
	return br, func() {}, nil
}

// Sniff reports whether head, the first [SniffLen] bytes of a file (or
// all of a shorter one), starts an archive: gzip or zstd data, a POSIX
// tar header (the "ustar" magic), or a pre-POSIX one (a valid header
// checksum).
func Sniff(head []byte) bool {
	if bytes.HasPrefix(head, gzipMagic) || bytes.HasPrefix(head, zstdMagic) {
		return true
	}
	if len(head) < SniffLen {
		return false
	}
	if bytes.HasPrefix(head[257:], []byte("ustar")) {
		return true
	}
	// A pre-POSIX header: the checksum field (148-155, octal) equals the
	// sum of the header bytes with that field taken as spaces.
	var sum int64
	for i, c := range head[:SniffLen] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	field := strings.TrimRight(strings.TrimSpace(string(head[148:156])), "\x00 ")
	var want int64
	if _, err := fmt.Sscanf(field, "%o", &want); err != nil {
		return false
	}
	return want == sum && sum != 8*' '
}
