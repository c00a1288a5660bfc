package userns

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkMap verifies the invariants of a valid map: at most MaxExtents
// extents, no overlap on either side, and lookups agreeing with extents.
func checkMap(t *testing.T, m Map) {
	t.Helper()
	ext := m.Extents()
	if len(ext) == 0 || len(ext) > MaxExtents {
		t.Fatalf("map %v has %d extents", m, len(ext))
	}
	for i, e := range ext {
		if e.Count == 0 || e.NsID == InvalidID || e.HostID == InvalidID ||
			uint64(e.NsID)+uint64(e.Count) > uint64(InvalidID) || uint64(e.HostID)+uint64(e.Count) > uint64(InvalidID) {
			t.Fatalf("map %v: invalid extent %v", m, e)
		}
		for _, p := range ext[:i] {
			if overlaps(e.NsID, e.Count, p.NsID, p.Count) || overlaps(e.HostID, e.Count, p.HostID, p.Count) {
				t.Fatalf("map %v: extents %v and %v overlap", m, e, p)
			}
		}
		for _, d := range []uint32{0, e.Count - 1} {
			h, err := m.ToHost(e.NsID + d)
			if err != nil || h != e.HostID+d {
				t.Fatalf("map %v: ToHost(%d) = %d, %v; want %d", m, e.NsID+d, h, err, e.HostID+d)
			}
			n, err := m.ToNs(e.HostID + d)
			if err != nil || n != e.NsID+d {
				t.Fatalf("map %v: ToNs(%d) = %d, %v; want %d", m, e.HostID+d, n, err, e.NsID+d)
			}
		}
	}
}

func addFiles(f *testing.F, glob string) {
	files, _ := filepath.Glob(glob)
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
}

func FuzzParseMap(f *testing.F) {
	for _, s := range []string{
		"0:100000:65536", "1:300000:1000,0:100000:1", "0:0:4294967295", "0:1:0",
		"0:100:10,9:200:1", "4294967294:0:2", "007:8:9", "", ",", "0:1:2,",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMap(s)
		if err != nil {
			var me *MapError
			if !m.IsZero() || !errors.As(err, &me) {
				t.Fatalf("ParseMap(%q) = %v, %v: want zero map and *MapError", s, m, err)
			}
			return
		}
		checkMap(t, m)
		s2 := m.String()
		m2, err := ParseMap(s2)
		if err != nil || !m2.Equal(m) || m2.String() != s2 {
			t.Fatalf("ParseMap(%q).String() = %q does not parse back: %v, %v", s, s2, m2, err)
		}
		m3, err := ParseProcMap(m.ProcString())
		if err != nil || !m3.Equal(m) {
			t.Fatalf("ParseProcMap(ProcString of %q) = %v, %v", s, m3, err)
		}
	})
}

func FuzzParseProcMap(f *testing.F) {
	for _, s := range []string{
		"0 100000 65536\n", "         0          0 4294967295\n", "0 1 2\n\n", "\t0\t1\t2\r\n3 4 5",
		"0 4294967295 10\n", "+0 1 2", "0 1 2 3",
	} {
		f.Add(s)
	}
	addFiles(f, "testdata/uid_map-*")
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseProcMap(s)
		if err != nil {
			if !m.IsZero() {
				t.Fatalf("ParseProcMap(%q) = %v with error %v", s, m, err)
			}
			return
		}
		checkMap(t, m)
		p := m.ProcString()
		m2, err := ParseProcMap(p)
		if err != nil || !m2.Equal(m) || m2.ProcString() != p {
			t.Fatalf("ParseProcMap(%q).ProcString() = %q does not parse back: %v", s, p, err)
		}
		if strings.Contains(s, "\n\n") {
			t.Fatalf("ParseProcMap(%q) accepted an empty line", s)
		}
	})
}

func FuzzCompose(f *testing.F) {
	f.Add("0:1000:1000", "0:100000:65536", uint32(5))
	f.Add("0:0:20", "0:500:10,10:900:10", uint32(12))
	f.Add("5:3:10", "10:900:10,0:500:10", uint32(14))
	f.Add("0:90:20", "0:1000:100", uint32(3))
	f.Add("0:4294967290:4", "4294967290:7:4", uint32(1))
	f.Fuzz(func(t *testing.T, a, b string, id uint32) {
		inner, err := ParseMap(a)
		if err != nil {
			return
		}
		outer, err := ParseMap(b)
		if err != nil {
			return
		}
		c, err := Compose(inner, outer)
		if err != nil {
			if !errors.Is(err, ErrTooMany) {
				t.Fatalf("Compose(%s, %s): %v", a, b, err)
			}
			return
		}
		if !c.IsZero() {
			checkMap(t, c)
		}
		got, gerr := c.ToHost(id)
		mid, err := inner.ToHost(id)
		if err == nil {
			var want uint32
			if want, err = outer.ToHost(mid); err == nil {
				if gerr != nil || got != want {
					t.Fatalf("Compose(%s, %s).ToHost(%d) = %d, %v; step by step %d", a, b, id, got, gerr, want)
				}
				back, err := c.Invert().ToHost(want)
				if err != nil || back != id {
					t.Fatalf("Invert(Compose(%s, %s)).ToHost(%d) = %d, %v; want %d", a, b, want, back, err, id)
				}
				return
			}
		}
		if !errors.Is(gerr, ErrUnmapped) {
			t.Fatalf("Compose(%s, %s).ToHost(%d) = %d, %v; step by step unmapped", a, b, id, got, gerr)
		}
	})
}

func FuzzParseSubID(f *testing.F) {
	f.Add("alice:100000:65536\n", "alice", uint32(1000))
	f.Add("# c\n\n1000:1:2\nbob:3:4", "", uint32(1000))
	f.Add("alice:1:0", "alice", uint32(0))
	f.Add("alice:4294967295:1", "alice", uint32(0))
	for _, p := range []string{"testdata/subuid", "testdata/subuid-bad"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b), "alice", uint32(1000))
	}
	f.Fuzz(func(t *testing.T, data, user string, uid uint32) {
		rs, err := ParseSubID(strings.NewReader(data), user, uid)
		if err != nil {
			if rs != nil {
				t.Fatalf("ParseSubID(%q) = %v with error %v", data, rs, err)
			}
			return
		}
		for _, r := range rs {
			if r.Count == 0 || uint64(r.Start)+uint64(r.Count) > uint64(InvalidID) {
				t.Fatalf("ParseSubID(%q) gave invalid range %v", data, r)
			}
		}
	})
}
