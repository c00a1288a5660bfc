package backup

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/userns"
)

// NormalizeAction says what [Normalize] did with one member's caps.
type NormalizeAction string

// Normalize actions.
const (
	// NormalizeRewritten: a revision-3 value whose rootid is a host uid
	// of the map became namespace-relative (revision 2 for the container
	// root, revision 3 with the container's uid for a nested root).
	NormalizeRewritten NormalizeAction = "rewritten"
	// NormalizeRelative: the value was namespace-relative already
	// (revision 2, or a rootid outside the map's host ids that is a
	// container uid); it is written as it was (revision 3 rootid 0 as
	// revision 2).
	NormalizeRelative NormalizeAction = "relative"
	// NormalizeForeign: a rootid that is neither a host uid of the map nor
	// a container uid: the value is kept as it was, and Normalize
	// reports it.
	NormalizeForeign NormalizeAction = "foreign"
	// NormalizeMalformed: a value that breaks the kernel's format rules,
	// kept as it was.
	NormalizeMalformed NormalizeAction = "malformed"
)

// NormalizeOptions configure [Normalize].
type NormalizeOptions struct {
	// UIDMap is the uid map of the user namespace the tar's caps were
	// read in (the container's, host ids outside). Required.
	UIDMap userns.Map
	// GIDMap is the gid map for Owners (default UIDMap).
	GIDMap userns.Map
	// Owners also translates the members' owners and groups that are host
	// ids of the maps into container ids; others are kept.
	Owners bool
	// archive.Compression of the output.
	Compression archive.Compression
	// Item is called for each member with caps, with the value before
	// and after (equal unless rewritten). It may be nil.
	Item func(name string, action NormalizeAction, before, after []byte, err error)
}

// NormalizeStats count what [Normalize] did.
type NormalizeStats struct {
	Members   int `json:"members"`
	WithCaps  int `json:"with_caps"`
	Rewritten int `json:"rewritten"`
	Relative  int `json:"relative"`
	Foreign   int `json:"foreign"`
	Malformed int `json:"malformed"`
	Owners    int `json:"owners_translated"`
}

// ErrNotNormalized is returned (wrapped) by [Normalize] when some caps
// could not be made namespace-relative (foreign rootids, malformed
// values): the output is complete, with those values as they were.
var ErrNotNormalized = errors.New("backup: some capabilities are not namespace-relative")

// Normalize copies the tar archive r (plain, gzip or zstd) to w, with
// every security.capability made namespace-relative for the container
// whose uid map is opts.UIDMap, as a runtime writing a layer diff should
// (and as container-libs does since its pull 1126): a revision-3 value
// with rootid R, a host uid the map covers, becomes revision 2 when R is
// the container root, else revision 3 with R's container uid. Values are
// taken from SCHILY.xattr.security.capability records (GNU tar, bsdtar,
// nscap) or LIBARCHIVE.xattr ones and written back as SCHILY records.
// Everything else of each member is copied (archive/tar writes every
// header in PAX format; GNU sparse members are written expanded).
//
// A rootid that is neither a host uid of the map nor a container uid
// (revision 2 and container uids count as namespace-relative already) is
// left as it is, like a malformed value, and the error then wraps
// [ErrNotNormalized] after the whole archive was written.
func Normalize(ctx context.Context, r io.Reader, w io.Writer, opts NormalizeOptions) (NormalizeStats, error) {
	var st NormalizeStats
	if opts.UIDMap.IsZero() {
		return st, errors.New("normalize: no uid map")
	}
	if opts.GIDMap.IsZero() {
		opts.GIDMap = opts.UIDMap
	}
	zr, closeFn, err := tarfmt.Decompress(r)
	if err != nil {
		return st, err
	}
	defer closeFn()
	zw, err := archive.Compressor(w, opts.Compression, 0)
	if err != nil {
		return st, err
	}
	tail := tarfmt.NewEndReader(zr)
	tr := tar.NewReader(tail)
	tw := tar.NewWriter(zw)
	for {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if err := tail.Check(); err != nil {
				return st, err
			}
			break
		}
		if err != nil {
			return st, err
		}
		st.Members++
		if opts.Owners {
			if u, err := opts.UIDMap.ToNs(uint32(h.Uid)); err == nil {
				h.Uid, h.Uname = int(u), ""
				st.Owners++
			}
			if g, err := opts.GIDMap.ToNs(uint32(h.Gid)); err == nil {
				h.Gid, h.Gname = int(g), ""
			}
		}
		if err := normalizeCaps(h, opts, &st); err != nil {
			return st, err
		}
		// archive/tar writes the PAX records as they are, but its
		// deprecated Xattrs win over them (the reader fills both), and
		// the data of a GNU sparse member comes out expanded, so its
		// sparse records must go.
		h.Xattrs = nil //nolint:staticcheck // SA1019: the reader fills the deprecated field, which the writer prefers over PAXRecords

		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				delete(h.PAXRecords, k)
			}
		}
		if h.Typeflag == tar.TypeGNUSparse {
			h.Typeflag = tar.TypeReg
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return st, fmt.Errorf("write %s: %w", h.Name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return st, fmt.Errorf("copy %s: %w", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return st, err
	}
	if err := zw.Close(); err != nil {
		return st, err
	}
	if st.Foreign > 0 || st.Malformed > 0 {
		return st, fmt.Errorf("%w: %d foreign rootids, %d malformed values kept as they were", ErrNotNormalized, st.Foreign, st.Malformed)
	}
	return st, nil
}

// normalizeCaps rewrites h's security.capability record.
func normalizeCaps(h *tar.Header, opts NormalizeOptions, st *NormalizeStats) error {
	raw, ok, err := tarfmt.Xattr(h.PAXRecords, archive.XattrCaps)
	if err != nil {
		return fmt.Errorf("read %s: %w", h.Name, err)
	}
	if !ok {
		return nil
	}
	st.WithCaps++
	item := func(a NormalizeAction, after []byte, err error) {
		if opts.Item != nil {
			opts.Item(h.Name, a, raw, after, err)
		}
	}
	root, err := archive.CapsRoot(raw)
	if err != nil {
		st.Malformed++
		item(NormalizeMalformed, raw, err)
		return nil
	}
	var out []byte
	var action NormalizeAction
	if ns, err := opts.UIDMap.ToNs(root); err == nil && root != 0 {
		out, action = archive.CapsWithRoot(raw, ns), NormalizeRewritten
		st.Rewritten++
	} else if _, err := opts.UIDMap.ToHost(root); root == 0 || err == nil {
		out, action = archive.CapsWithRoot(raw, root), NormalizeRelative
		st.Relative++
	} else {
		st.Foreign++
		item(NormalizeForeign, raw, &archive.IDError{Kind: archive.KindRootID, ID: root, Host: true, Err: userns.ErrUnmapped})
		return nil
	}
	delete(h.PAXRecords, "LIBARCHIVE.xattr."+archive.XattrCaps)
	h.PAXRecords["SCHILY.xattr."+archive.XattrCaps] = string(out)
	item(action, out, nil)
	return nil
}
