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
	"github.com/ulikunitz/xz"
)

// Compression magic numbers, sniffed from the first bytes of an archive.
var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	xzMagic   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
)

// MaxXzDict bounds the LZMA2 dictionary the first block of an xz stream
// may ask for: xz -9 uses 64 MiB, and the decoder allocates what the
// header says at once (up to 1.5 GiB for a hostile one). Later blocks of
// a multi-block stream are checked by the decoder only, as xz -d without
// --memlimit does.
const MaxXzDict = 64 << 20

// MaxZstdWindow bounds the memory a zstd frame header may ask for: every
// level zstd uses without --long fits in 8 MiB, and a hostile header
// claiming gigabytes must not make the reader allocate them. The decoder
// may use at most 4 times this much.
const MaxZstdWindow = 16 << 20

// SniffLen is how many bytes of a file [Sniff] looks at: one tar block.
const SniffLen = 512

// HeaderError is a gzip, zstd or xz stream whose header does not decode: the
// data is not what its magic number says (or could not be read).
type HeaderError struct {
	Compression string // "gzip", "zstd" or "xz"
	Err         error  // the decompressor's error
}

func (e *HeaderError) Error() string {
	return fmt.Sprintf("read %s header: %v", e.Compression, e.Err)
}

// Unwrap returns the decompressor's error.
func (e *HeaderError) Unwrap() error { return e.Err }

// Decompress detects the compression of r from its first bytes and
// returns a reader of the decompressed data: gzip (every member of a
// multi-member stream), zstd (one decoder goroutine, low memory, a
// window of at most [MaxZstdWindow]) or xz (every stream; a first block's
// dictionary of at most [MaxXzDict]), anything else read as it is. closeFn
// releases the decompressor; it does not close r. A gzip header that does
// not decode is a *[HeaderError] (zstd reads its frame header on the
// first Read, which returns that error); an error reading r is returned
// as it is.
func Decompress(r io.Reader) (dr io.Reader, closeFn func(), err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.Peek(len(xzMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, nil, err
	}
	switch {
	case bytes.HasPrefix(head, xzMagic):
		// The stream header (12 bytes) and the first block header (at
		// most 1024): the dictionary size, checked before the decoder
		// allocates it.
		first, err := br.Peek(12 + 1024)
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, nil, err
		}
		if err := checkXzDict(first); err != nil {
			return nil, nil, &HeaderError{Compression: "xz", Err: err}
		}
		zr, err := xz.ReaderConfig{}.NewReader(br)
		if err != nil {
			return nil, nil, &HeaderError{Compression: "xz", Err: err}
		}
		return zr, func() {}, nil
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
// all of a shorter one), starts an archive: gzip, zstd or xz data, a POSIX
// tar header (the "ustar" magic), or a pre-POSIX one (a valid header
// checksum).
func Sniff(head []byte) bool {
	if bytes.HasPrefix(head, gzipMagic) || bytes.HasPrefix(head, zstdMagic) || bytes.HasPrefix(head, xzMagic) {
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

// checkXzDict reads the first block header of the xz stream that b starts
// (xz file format 1.2.0, sections 2.1.1 and 3.1) and refuses an LZMA2
// dictionary larger than [MaxXzDict]. A stream with no block (empty), or
// a header this cannot read, is left to the decoder.
func checkXzDict(b []byte) error {
	const streamHeader = 12
	if len(b) <= streamHeader+1 || b[streamHeader] == 0 { // 0: the index, no block
		return nil
	}
	size := (int(b[streamHeader]) + 1) * 4
	if len(b) < streamHeader+size {
		return nil
	}
	h := b[streamHeader : streamHeader+size]
	flags := h[1]
	off := 2
	uvarint := func() (uint64, bool) {
		var v uint64
		for i := 0; i < 9 && off < len(h); i++ {
			c := h[off]
			off++
			v |= uint64(c&0x7f) << (7 * i)
			if c&0x80 == 0 {
				return v, true
			}
		}
		return 0, false
	}
	if flags&0x40 != 0 { // compressed size
		if _, ok := uvarint(); !ok {
			return nil
		}
	}
	if flags&0x80 != 0 { // uncompressed size
		if _, ok := uvarint(); !ok {
			return nil
		}
	}
	for range int(flags&3) + 1 {
		id, ok := uvarint()
		if !ok {
			return nil
		}
		n, ok := uvarint()
		if !ok || off+int(n) > len(h) {
			return nil
		}
		if id == 0x21 && n == 1 { // LZMA2: one byte, the dictionary size
			d := h[off]
			if d > 40 {
				return fmt.Errorf("LZMA2 dictionary size byte %d is invalid", d)
			}
			dict := uint64(0xFFFFFFFF)
			if d < 40 {
				dict = uint64(2|d&1) << (d/2 + 11)
			}
			if dict > MaxXzDict {
				return fmt.Errorf("LZMA2 dictionary of %d MiB exceeds the %d MiB nscap allows (xz -9 uses 64 MiB)", dict>>20, MaxXzDict>>20)
			}
		}
		off += int(n)
	}
	return nil
}
