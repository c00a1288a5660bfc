package tarfmt

import (
	"archive/tar"
	"errors"
	"fmt"
)

// ErrLateGlobal is a pax global header carrying a comment after the first
// member. nscap's comment says how every member is to be read (its source
// maps): one that arrives late would change the meaning of what follows
// it, so restore and the audit refuse it rather than pick a reading.
var ErrLateGlobal = errors.New("tarfmt: pax global header with a comment after the first member")

// Globals applies the one rule by which nscap reads pax global headers:
// only those before the first member count; the comment of the last of
// them is the archive's. A later global header with a comment is an
// error ([ErrLateGlobal]); a later one without is ignored, as archive/tar
// ignores every global record. Feed it every header in order.
type Globals struct {
	// Comment is the raw comment record of the archive ("" when none).
	Comment string
	member  bool
}

// Take reports whether h is a global header (consumed: not a member) and
// records what it says; err is non-nil for a late global comment.
func (g *Globals) Take(h *tar.Header) (global bool, err error) {
	if h.Typeflag != tar.TypeXGlobalHeader {
		g.member = true
		return false, nil
	}
	c, ok := h.PAXRecords[CommentRecord]
	if !ok {
		return true, nil
	}
	if g.member {
		return true, fmt.Errorf("%w: %q", ErrLateGlobal, c)
	}
	g.Comment = c
	return true, nil
}
