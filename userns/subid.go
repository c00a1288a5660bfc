package userns

import (
	"bufio"
	"fmt"
	"io"
	"os"
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
