package archiver

import (
	"archive/tar"
	"bytes"
	"errors"
	"maps"
	"path"
	"strconv"
	"strings"

	"github.com/nscap/nscap/internal/sys"

	"github.com/nscap/nscap/internal/tarfmt"
)

// A sparse file (fewer blocks allocated than its size) is archived as a
// GNU tar pax sparse member, format 1.0, which GNU tar, bsdtar and
// archive/tar read: the header is named DIR/GNUSparseFile.0/BASE and
// carries the real name and size in GNU.sparse.* records; its data is the
// sparse map (decimal text, padded to a block) followed by the data
// extents only. A 100 MiB file with 8 KiB of data takes 8.5 KiB.

// extent is a run of data in a sparse file.
type extent struct{ off, n int64 }

// pax records of the GNU sparse format 1.0.
const (
	paxSparseMinor    = "GNU.sparse.minor"
	paxSparseName     = "GNU.sparse.name"
	paxSparseRealSize = "GNU.sparse.realsize"
)

// isSparse tells whether a regular file of this stat has holes worth
// archiving as such: fewer 512-byte blocks allocated than its size needs.
func isSparse(st *sys.Stat_t) bool {
	return st.Size > 0 && st.Blocks*512 < st.Size
}

// dataExtents returns the data runs of fd (size bytes) with SEEK_DATA and
// SEEK_HOLE. A filesystem without them reports the whole file as data.
// A file that changes meanwhile gives a map that may not match its data:
// the writer pads or cuts each run as it reads it, as for any file that
// changes while read.
func dataExtents(fd int, size int64) ([]extent, error) {
	var ext []extent
	var off int64
	for off < size {
		data, err := sys.Seek(fd, off, sys.SEEK_DATA)
		if errors.Is(err, sys.ENXIO) {
			break // only a hole up to EOF
		}
		if err != nil {
			return nil, err
		}
		if data >= size {
			break
		}
		hole, err := sys.Seek(fd, data, sys.SEEK_HOLE)
		if err != nil {
			return nil, err
		}
		hole = min(hole, size)
		ext = append(ext, extent{data, hole - data})
		off = hole
	}
	return ext, nil
}

// sparseMap formats the map of the sparse format 1.0: the number of
// entries, then each offset and length, one decimal per line, padded with
// NULs to a 512-byte block. A file ending in a hole gets a last empty
// entry at its size, as GNU tar writes it.
func sparseMap(ext []extent, size int64) ([]byte, []extent) {
	if n := len(ext); n == 0 || ext[n-1].off+ext[n-1].n < size {
		ext = append(ext, extent{size, 0})
	}
	b := strconv.AppendInt(nil, int64(len(ext)), 10)
	b = append(b, '\n')
	for _, e := range ext {
		b = strconv.AppendInt(b, e.off, 10)
		b = append(b, '\n')
		b = strconv.AppendInt(b, e.n, 10)
		b = append(b, '\n')
	}
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b, ext
}

// sparseHeader returns the header of the sparse member of hdr (a regular
// file of hdr.Size bytes) whose data runs are ext, and the map to write
// before the data.
func sparseHeader(hdr *tar.Header, ext []extent) (*tar.Header, []byte) {
	m, _ := sparseMap(ext, hdr.Size)
	var data int64
	for _, e := range ext {
		data += e.n
	}
	h := *hdr
	dir, base := path.Split(hdr.Name)
	h.Name = dir + "GNUSparseFile.0/" + base
	h.Size = int64(len(m)) + data
	h.PAXRecords = maps.Clone(hdr.PAXRecords)
	if h.PAXRecords == nil {
		h.PAXRecords = make(map[string]string, 4)
	}
	h.PAXRecords["GNU.sparse.major"] = "1"
	h.PAXRecords[paxSparseMinor] = "0"
	h.PAXRecords[paxSparseName] = hdr.Name
	h.PAXRecords[paxSparseRealSize] = strconv.FormatInt(hdr.Size, 10)
	return &h, m
}

// encodeSparseHeader returns the header blocks of a sparse member h (made
// by sparseHeader). archive/tar keeps the GNU.sparse.* records out of a
// member's extended header (it writes no sparse files itself) but writes
// any record in a global one: the member's own records and the sparse ones
// are encoded as a global header whose type is then made 'x', followed by
// the member's header block as archive/tar encodes it.
func encodeSparseHeader(h *tar.Header) ([]byte, error) {
	var member bytes.Buffer
	plain := *h
	plain.PAXRecords = make(map[string]string, len(h.PAXRecords))
	for k, v := range h.PAXRecords {
		if !strings.HasPrefix(k, "GNU.sparse.") {
			plain.PAXRecords[k] = v
		}
	}
	if err := tar.NewWriter(&member).WriteHeader(&plain); err != nil {
		return nil, err
	}
	blocks := member.Bytes()
	main := blocks[len(blocks)-tarfmt.BlockSize:]
	// The records archive/tar chose (path, mtime, uid... and ours).
	rd, err := tar.NewReader(bytes.NewReader(blocks)).Next()
	if err != nil {
		return nil, err
	}
	recs := maps.Clone(rd.PAXRecords)
	if recs == nil {
		recs = make(map[string]string, 4)
	}
	for k, v := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			recs[k] = v
		}
	}
	dir, base := path.Split(h.PAXRecords[paxSparseName])
	var ext bytes.Buffer
	err = tar.NewWriter(&ext).WriteHeader(&tar.Header{
		Typeflag:   tar.TypeXGlobalHeader,
		Name:       dir + "PaxHeaders.0/" + base,
		PAXRecords: recs,
		Format:     tar.FormatPAX,
	})
	if err != nil {
		return nil, err
	}
	out := ext.Bytes()
	out[156] = tar.TypeXHeader
	tarfmt.SetChecksum(out[:tarfmt.BlockSize])
	// archive/tar pads the records only when the next write comes.
	if r := len(out) % tarfmt.BlockSize; r != 0 {
		out = append(out, make([]byte, tarfmt.BlockSize-r)...)
	}
	return append(out, main...), nil
}
