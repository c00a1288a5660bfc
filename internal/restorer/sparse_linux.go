package restorer

import (
	"bytes"
	"io"
	"os"
)

// holeBlock is the unit of the holes restore makes: a run of zeros of
// that size, aligned on it in the file, is skipped instead of written.
// 4 KiB is the block of ext4, xfs and btrfs on usual systems.
const holeBlock = 4096

// sparseChunk is the size of the buffer a sparse member is copied by.
const sparseChunk = 256 << 10

var zeroBlock [holeBlock]byte

// copySparse writes the size bytes read from r to f, leaving a hole for
// every aligned block of zeros, and sets the size at the end (a file
// that ends in a hole has no data there). It returns the bytes consumed
// from r.
func copySparse(f *os.File, r io.Reader, size int64) (int64, error) {
	buf := make([]byte, min(max(size, holeBlock), sparseChunk))
	var off int64
	for off < size {
		k := int(min(int64(len(buf)), size-off))
		m, err := io.ReadFull(r, buf[:k])
		if err := writeData(f, buf[:m], off); err != nil {
			return off, err
		}
		off += int64(m)
		if err != nil {
			return off, err
		}
	}
	if err := f.Truncate(size); err != nil {
		return off, err
	}
	return off, nil
}

// writeData writes b at offset off of f (a multiple of holeBlock, or the
// last piece of the file), skipping the blocks that are all zeros.
func writeData(f *os.File, b []byte, off int64) error {
	for len(b) > 0 {
		// A run of data blocks, then a run of zero blocks.
		i := 0
		for i < len(b) && !isZero(b[i:min(i+holeBlock, len(b))]) {
			i += holeBlock
		}
		i = min(i, len(b))
		if i > 0 {
			if _, err := f.WriteAt(b[:i], off); err != nil {
				return err
			}
		}
		j := i
		for j < len(b) && isZero(b[j:min(j+holeBlock, len(b))]) {
			j += holeBlock
		}
		j = min(j, len(b))
		off += int64(j)
		b = b[j:]
	}
	return nil
}

func isZero(b []byte) bool { return bytes.Equal(b, zeroBlock[:len(b)]) }
