package userns

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// SubIDRange is one range of subordinate ids from /etc/subuid or
// /etc/subgid: Count ids starting at Start.
type SubIDRange struct {
	Start uint32 `json:"start"`
	Count uint32 `json:"count"`
}

// ParseSubID reads /etc/subuid or /etc/subgid text (see subuid(5)) and
// returns the ranges of the user given by name or by numeric id, in file
// order: lines "OWNER:START:COUNT" whose OWNER is user or the decimal form
// of uid, as newuidmap(1) matches them. Blank lines and lines starting with
// '#' are skipped. user may be empty to match by uid only.
//
// Every line must be well formed, whoever it belongs to: a malformed line
// gives an error naming the line and wrapping [ErrSyntax]; a count of 0
// gives [ErrZeroCount] and a range past 4294967294 [ErrWrap]. A user with
// no range gets an empty slice and a nil error.
func ParseSubID(r io.Reader, user string, uid uint32) ([]SubIDRange, error) {
	id := strconv.FormatUint(uint64(uid), 10)
	var out []SubIDRange
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, ":")
		if len(f) != 3 || f[0] == "" {
			return nil, fmt.Errorf("%w: line %d %q: want OWNER:START:COUNT", ErrSyntax, n, line)
		}
		start, err := parseDecimal(f[1])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d %q: start %q: %v", ErrSyntax, n, line, f[1], err)
		}
		count, err := parseDecimal(f[2])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d %q: count %q: %v", ErrSyntax, n, line, f[2], err)
		}
		switch {
		case count == 0:
			return nil, fmt.Errorf("%w: line %d %q", ErrZeroCount, n, line)
		case start+count <= start:
			return nil, fmt.Errorf("%w: line %d %q: range ends past 4294967294", ErrWrap, n, line)
		}
		if (user != "" && f[0] == user) || f[0] == id {
			out = append(out, SubIDRange{Start: start, Count: count})
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read subordinate ids: %w", err)
	}
	return out, nil
}

// ReadSubID reads the ranges of user (name) and uid from the file at path,
// usually "/etc/subuid" or "/etc/subgid", with [ParseSubID]. It returns an
// error wrapping [ErrNoSubID] when the user has none.
func ReadSubID(path, user string, uid uint32) ([]SubIDRange, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := ParseSubID(f, user, uid)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if len(r) == 0 {
		return nil, fmt.Errorf("%w: %s has no range for %q (id %d)", ErrNoSubID, path, user, uid)
	}
	return r, nil
}

// RootlessMap builds the map a rootless helper namespace gets, the map
// podman and newuidmap(1) set up: inside id 0 is the caller's own id self,
// and inside ids 1, 2, ... run through the subordinate ranges in order.
// Ranges beyond 4294967294 inside ids are cut. The result is validated as
// by [NewMap]; a range that contains self gives [ErrOverlap].
func RootlessMap(self uint32, ranges []SubIDRange) (Map, error) {
	ext := []Extent{{NsID: 0, HostID: self, Count: 1}}
	next := uint64(1)
	for _, r := range ranges {
		n := uint64(r.Count)
		if next+n > uint64(InvalidID) {
			n = uint64(InvalidID) - next
		}
		if n == 0 {
			break
		}
		ext = append(ext, Extent{NsID: uint32(next), HostID: r.Start, Count: uint32(n)})
		next += n
	}
	return NewMap(ext)
}

// IDRange is the span of ids First to Last, both included.
type IDRange struct{ First, Last uint32 }

// String formats r as "FIRST-LAST", or "ID" for a single id.
func (r IDRange) String() string {
	if r.First == r.Last {
		return strconv.FormatUint(uint64(r.First), 10)
	}
	return strconv.FormatUint(uint64(r.First), 10) + "-" + strconv.FormatUint(uint64(r.Last), 10)
}

// Unowned returns the outside ids of m that are neither self nor in one of
// ranges, in increasing order, merged where adjacent: the ids a rootless
// helper namespace (inside 0 = self, then the ranges, as [RootlessMap]
// builds it) cannot reach, so that m does not fit a caller with those
// ranges. It returns nil when m fits.
func Unowned(m Map, self uint32, ranges []SubIDRange) []IDRange {
	owned := []IDRange{{self, self}}
	for _, r := range ranges {
		owned = append(owned, IDRange{r.Start, r.Start + r.Count - 1})
	}
	slices.SortFunc(owned, func(a, b IDRange) int { return cmpU32(a.First, b.First) })
	var out []IDRange
	add := func(first, last uint64) {
		if n := len(out); n > 0 && uint64(out[n-1].Last)+1 >= first {
			out[n-1].Last = max(out[n-1].Last, uint32(last))
			return
		}
		out = append(out, IDRange{uint32(first), uint32(last)})
	}
	ext := m.Extents()
	slices.SortFunc(ext, func(a, b Extent) int { return cmpU32(a.HostID, b.HostID) })
	for _, e := range ext {
		next, last := uint64(e.HostID), uint64(e.HostID)+uint64(e.Count)-1
		for _, o := range owned {
			if next > last {
				break
			}
			if uint64(o.Last) < next {
				continue
			}
			if uint64(o.First) > next {
				add(next, min(last, uint64(o.First)-1))
			}
			next = uint64(o.Last) + 1
		}
		if next <= last {
			add(next, last)
		}
	}
	return out
}

// HostRanges returns the outside ids of m in increasing order, adjacent
// extents merged.
func (m Map) HostRanges() []IDRange {
	ext := m.Extents()
	slices.SortFunc(ext, func(a, b Extent) int { return cmpU32(a.HostID, b.HostID) })
	var out []IDRange
	for _, e := range ext {
		last := e.HostID + e.Count - 1
		if n := len(out); n > 0 && uint64(out[n-1].Last)+1 >= uint64(e.HostID) {
			out[n-1].Last = max(out[n-1].Last, last)
			continue
		}
		out = append(out, IDRange{e.HostID, last})
	}
	return out
}

// HostRangesText lists [Map.HostRanges] as "1000, 400000-465535".
func (m Map) HostRangesText() string {
	var parts []string
	for _, r := range m.HostRanges() {
		parts = append(parts, r.String())
	}
	return strings.Join(parts, ", ")
}
