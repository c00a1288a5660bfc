package userns

import (
	"slices"
	"strconv"
	"strings"
)

// MaxExtents is the largest number of extents a uid_map or gid_map may
// hold (UID_GID_MAP_MAX_EXTENTS in include/linux/user_namespace.h).
const MaxExtents = 340

// InvalidID is (uid_t)-1: never a valid first id, and what /proc shows in
// column 2 when the reader's namespace does not map the id.
const InvalidID = ^uint32(0)

// Extent is one line of a uid_map or gid_map: Count ids starting at NsID
// inside the namespace map to Count ids starting at HostID outside it.
type Extent struct {
	NsID   uint32 `json:"ns_id"`   // first id inside (uid_map column 1)
	HostID uint32 `json:"host_id"` // first id outside, in the parent or the reader (column 2)
	Count  uint32 `json:"count"`   // column 3
}

// String formats e in the flag form "NS:HOST:COUNT".
func (e Extent) String() string {
	return strconv.FormatUint(uint64(e.NsID), 10) + ":" +
		strconv.FormatUint(uint64(e.HostID), 10) + ":" +
		strconv.FormatUint(uint64(e.Count), 10)
}

// Map is a validated id map (uid or gid). The zero Map maps nothing.
//
// A Map is immutable and safe for concurrent use. It keeps its extents in
// the order they were given (the order the kernel displays for maps of up
// to five extents), and sorted copies for lookups in O(log n).
type Map struct {
	extents []Extent
	byNs    []Extent // sorted by NsID
	byHost  []Extent // sorted by HostID
}

// NewMap validates ext with the rules of the kernel's map_write
// (kernel/user_namespace.c) and returns the map. The rules, each reported
// as a [*MapError] wrapping the sentinel in parentheses:
//
//   - at least one extent (ErrEmpty) and at most [MaxExtents] (ErrTooMany);
//   - NsID and HostID are not 4294967295 (ErrInvalidID);
//   - Count is not 0 (ErrZeroCount) and neither range runs past
//     4294967294 (ErrWrap);
//   - no two inside ranges and no two outside ranges overlap (ErrOverlap).
//
// Order does not matter, as for the kernel. The kernel's further check
// that the outside range is mapped in the parent namespace depends on the
// live system and is not done here. NewMap copies ext.
func NewMap(ext []Extent) (Map, error) {
	return newMap(ext, nil)
}

// newMap validates ext; texts, when not nil, holds the source text of
// each extent for error messages.
func newMap(ext []Extent, texts []string) (Map, error) {
	text := func(i int) string {
		if texts != nil {
			return texts[i]
		}
		return ext[i].String()
	}
	fail := func(i int, err error, detail string) (Map, error) {
		t := ""
		if i >= 0 {
			t = text(i)
		}
		return Map{}, &MapError{Extent: i, Text: t, Err: err, Detail: detail}
	}
	if len(ext) == 0 {
		return fail(-1, ErrEmpty, "")
	}
	for i, e := range ext {
		switch {
		case e.NsID == InvalidID:
			return fail(i, ErrInvalidID, "inside")
		case e.HostID == InvalidID:
			return fail(i, ErrInvalidID, "outside")
		case e.Count == 0:
			return fail(i, ErrZeroCount, "")
		case e.NsID+e.Count <= e.NsID:
			return fail(i, ErrWrap, "inside range ends past 4294967294")
		case e.HostID+e.Count <= e.HostID:
			return fail(i, ErrWrap, "outside range ends past 4294967294")
		}
		for j, p := range ext[:i] {
			if overlaps(e.NsID, e.Count, p.NsID, p.Count) {
				return fail(i, ErrOverlap, "inside range overlaps extent "+strconv.Itoa(j)+" "+strconv.Quote(text(j)))
			}
			if overlaps(e.HostID, e.Count, p.HostID, p.Count) {
				return fail(i, ErrOverlap, "outside range overlaps extent "+strconv.Itoa(j)+" "+strconv.Quote(text(j)))
			}
		}
		if i >= MaxExtents {
			return fail(i, ErrTooMany, "at most "+strconv.Itoa(MaxExtents)+" extents")
		}
	}
	return build(slices.Clone(ext)), nil
}

// build makes a Map from extents already known to be valid.
func build(ext []Extent) Map {
	m := Map{extents: ext, byNs: slices.Clone(ext), byHost: slices.Clone(ext)}
	slices.SortFunc(m.byNs, func(a, b Extent) int { return cmpU32(a.NsID, b.NsID) })
	slices.SortFunc(m.byHost, func(a, b Extent) int { return cmpU32(a.HostID, b.HostID) })
	return m
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// overlaps reports whether [a, a+n) and [b, b+m) intersect; both ranges
// are known not to wrap.
func overlaps(a, n, b, m uint32) bool {
	return uint64(a) < uint64(b)+uint64(m) && uint64(b) < uint64(a)+uint64(n)
}

// Extents returns a copy of the extents of m, in the order they were given.
func (m Map) Extents() []Extent { return slices.Clone(m.extents) }

// Len returns the number of extents of m.
func (m Map) Len() int { return len(m.extents) }

// IsZero reports whether m has no extent (the zero Map).
func (m Map) IsZero() bool { return len(m.extents) == 0 }

// Equal reports whether m and o have the same extents in the same order.
// (go-cmp uses this method.)
func (m Map) Equal(o Map) bool { return slices.Equal(m.extents, o.extents) }

// ToHost maps the inside id nsID to the outside id. An id no extent
// covers gives an [*UnmappedError] (matching [ErrUnmapped]).
func (m Map) ToHost(nsID uint32) (uint32, error) {
	if e, ok := find(m.byNs, nsID, func(e Extent) uint32 { return e.NsID }); ok {
		return e.HostID + (nsID - e.NsID), nil
	}
	return 0, &UnmappedError{ID: nsID, Map: m}
}

// ToNs maps the outside id hostID to the inside id. An id no extent
// covers gives an [*UnmappedError] with Host set (matching [ErrUnmapped]).
func (m Map) ToNs(hostID uint32) (uint32, error) {
	if e, ok := find(m.byHost, hostID, func(e Extent) uint32 { return e.HostID }); ok {
		return e.NsID + (hostID - e.HostID), nil
	}
	return 0, &UnmappedError{ID: hostID, Host: true, Map: m}
}

// find returns the extent of sorted (sorted by key) covering id.
func find(sorted []Extent, id uint32, key func(Extent) uint32) (Extent, bool) {
	// i = number of extents starting at or below id.
	i, _ := slices.BinarySearchFunc(sorted, id, func(e Extent, id uint32) int {
		if key(e) <= id {
			return -1
		}
		return 1
	})
	if i == 0 {
		return Extent{}, false
	}
	e := sorted[i-1]
	if id-key(e) < e.Count {
		return e, true
	}
	return Extent{}, false
}

// String formats m in the flag form "NS:HOST:COUNT[,NS:HOST:COUNT...]"
// that [ParseMap] reads; the zero Map gives "".
func (m Map) String() string {
	var b strings.Builder
	for i, e := range m.extents {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(e.String())
	}
	return b.String()
}

// ProcString formats m as the kernel accepts it in a single write to
// /proc/PID/uid_map: one "NS HOST COUNT" line per extent, each ending in a
// newline. [ParseProcMap] reads it back. (A write must also stay under
// 4096 bytes, which this function does not check.)
func (m Map) ProcString() string {
	var b strings.Builder
	for _, e := range m.extents {
		b.WriteString(strconv.FormatUint(uint64(e.NsID), 10))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(uint64(e.HostID), 10))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(uint64(e.Count), 10))
		b.WriteByte('\n')
	}
	return b.String()
}

// MarshalText implements [encoding.TextMarshaler] with the flag form of
// [Map.String].
func (m Map) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler] with [ParseMap]; an
// empty text gives the zero Map.
func (m *Map) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*m = Map{}
		return nil
	}
	p, err := ParseMap(string(b))
	if err != nil {
		return err
	}
	*m = p
	return nil
}

// Invert returns m with the inside and outside of every extent swapped:
// it maps host ids to namespace ids. Inverting a valid map always gives a
// valid map.
func (m Map) Invert() Map {
	ext := make([]Extent, len(m.extents))
	for i, e := range m.extents {
		ext[i] = Extent{NsID: e.HostID, HostID: e.NsID, Count: e.Count}
	}
	return build(ext)
}

// Compose chains two maps: inner maps the ids of a namespace to ids of the
// namespace described by outer (inner's outside ids are outer's inside
// ids), and outer maps those to its own outside ids. The result maps
// inner's inside ids directly to outer's outside ids, as the kernel does
// when it stores a child's uid_map in kernel ids.
//
// An inner extent that spans several outer extents is split, one extent
// per piece, in inner's order. Inner ids whose outer id is not covered by
// outer are dropped: for them the result gives [ErrUnmapped], as resolving
// them step by step does. The result may therefore be the zero Map. (The
// kernel instead refuses such a child map with EPERM.) Compose fails with
// [ErrTooMany] only when splitting makes more than [MaxExtents] extents.
func Compose(inner, outer Map) (Map, error) {
	var ext []Extent
	for _, e := range inner.extents {
		lo, hi := uint64(e.HostID), uint64(e.HostID)+uint64(e.Count)
		// First outer extent that may intersect: the last one starting at
		// or below lo, or the first one above it.
		i, _ := slices.BinarySearchFunc(outer.byNs, e.HostID, func(o Extent, id uint32) int {
			if o.NsID <= id {
				return -1
			}
			return 1
		})
		if i > 0 {
			i--
		}
		for ; i < len(outer.byNs); i++ {
			o := outer.byNs[i]
			olo, ohi := uint64(o.NsID), uint64(o.NsID)+uint64(o.Count)
			if olo >= hi {
				break
			}
			plo, phi := max(lo, olo), min(hi, ohi)
			if plo >= phi {
				continue
			}
			ext = append(ext, Extent{
				NsID:   e.NsID + uint32(plo-lo),
				HostID: o.HostID + uint32(plo-olo),
				Count:  uint32(phi - plo),
			})
		}
	}
	if len(ext) == 0 {
		return Map{}, nil
	}
	if len(ext) > MaxExtents {
		return Map{}, &MapError{
			Extent: MaxExtents, Text: ext[MaxExtents].String(), Err: ErrTooMany,
			Detail: "composition needs " + strconv.Itoa(len(ext)) + " extents",
		}
	}
	return build(ext), nil
}
