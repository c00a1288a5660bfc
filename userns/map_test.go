package userns

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustMap(tb testing.TB, s string) Map {
	tb.Helper()
	m, err := ParseMap(s)
	if err != nil {
		tb.Fatalf("ParseMap(%q): %v", s, err)
	}
	return m
}

// manyExtents returns n disjoint one-id extents "i:100000+i:1".
func manyExtents(n int, sep string, proc bool) string {
	parts := make([]string, n)
	for i := range parts {
		if proc {
			parts[i] = fmt.Sprintf("%d %d 1", i, 100000+i)
		} else {
			parts[i] = fmt.Sprintf("%d:%d:1", i, 100000+i)
		}
	}
	return strings.Join(parts, sep)
}

func TestParseMap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []Extent
		wantErr error
		extent  int // index named by the *MapError
	}{
		{name: "single", in: "0:100000:65536", want: []Extent{{0, 100000, 65536}}},
		{name: "several unsorted", in: "1:300000:1000,0:100000:1", want: []Extent{{1, 300000, 1000}, {0, 100000, 1}}},
		{name: "identity all", in: "0:0:4294967295", want: []Extent{{0, 0, 4294967295}}},
		{name: "leading zeros", in: "00:0100:01", want: []Extent{{0, 100, 1}}},
		{name: "last id", in: "4294967294:4294967294:1", want: []Extent{{4294967294, 4294967294, 1}}},
		{name: "340 extents", in: manyExtents(340, ",", false), want: nil},
		{name: "empty", in: "", wantErr: ErrEmpty, extent: -1},
		{name: "two fields", in: "0:1", wantErr: ErrSyntax},
		{name: "four fields", in: "0:1:2:3", wantErr: ErrSyntax},
		{name: "trailing comma", in: "0:1:2,", wantErr: ErrSyntax, extent: 1},
		{name: "space", in: "0: 1:2", wantErr: ErrSyntax},
		{name: "sign", in: "+0:1:2", wantErr: ErrSyntax},
		{name: "hex", in: "0x0:1:2", wantErr: ErrSyntax},
		{name: "negative", in: "0:-1:2", wantErr: ErrSyntax},
		{name: "too big", in: "4294967296:0:1", wantErr: ErrSyntax},
		{name: "zero count", in: "0:1:0", wantErr: ErrZeroCount},
		{name: "inside -1", in: "4294967295:1:1", wantErr: ErrInvalidID},
		{name: "outside -1", in: "0:4294967295:1", wantErr: ErrInvalidID},
		{name: "inside wraps", in: "4294967294:0:2", wantErr: ErrWrap},
		{name: "outside wraps", in: "0:4294967200:96", wantErr: ErrWrap},
		{name: "overlap inside", in: "0:100:10,9:200:1", wantErr: ErrOverlap, extent: 1},
		{name: "overlap outside", in: "0:100:10,20:109:5", wantErr: ErrOverlap, extent: 1},
		{name: "overlap third", in: "0:100:1,1:101:1,0:500:1", wantErr: ErrOverlap, extent: 2},
		{name: "341 extents", in: manyExtents(341, ",", false), wantErr: ErrTooMany, extent: 340},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseMap(tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("ParseMap(%q) error = %v, want %v", tc.in, err, tc.wantErr)
				}
				var me *MapError
				if !errors.As(err, &me) {
					t.Fatalf("ParseMap(%q) error %T is not a *MapError", tc.in, err)
				}
				if me.Extent != tc.extent {
					t.Errorf("ParseMap(%q) error names extent %d, want %d (%v)", tc.in, me.Extent, tc.extent, err)
				}
				if !got.IsZero() {
					t.Errorf("ParseMap(%q) = %v with an error, want zero", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMap(%q): %v", tc.in, err)
			}
			if tc.want != nil {
				if d := cmp.Diff(tc.want, got.Extents()); d != "" {
					t.Errorf("ParseMap(%q) mismatch (-want +got):\n%s", tc.in, d)
				}
			}
			again, err := ParseMap(got.String())
			if err != nil || !again.Equal(got) {
				t.Errorf("ParseMap(String()) = %v, %v; want %v", again, err, got)
			}
		})
	}
}

func TestMapErrorText(t *testing.T) {
	t.Parallel()
	_, err := ParseMap("0:100:10,5:300:1")
	want := `userns: extents overlap: extent 1 "5:300:1": inside range overlaps extent 0 "0:100:10"`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
	_, err = ParseProcMap("0 0 1\n1 x 1\n")
	want = `userns: syntax error: extent 1 "1 x 1": outside id "x": not a decimal number`
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestParseProcMap(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		want    []Extent
		wantErr error
		extent  int
	}{
		{name: "kernel display", in: "         0     100000      65536\n", want: []Extent{{0, 100000, 65536}}},
		{name: "initial namespace", in: "         0          0 4294967295\n", want: []Extent{{0, 0, 4294967295}}},
		{name: "no final newline", in: "0 100000 1", want: []Extent{{0, 100000, 1}}},
		{name: "tabs and cr", in: "\t0\t1\t2\r\n3 4 5", want: []Extent{{0, 1, 2}, {3, 4, 5}}},
		{name: "unsorted", in: "1 300000 1000\n0 100000 1\n", want: []Extent{{1, 300000, 1000}, {0, 100000, 1}}},
		{name: "340 lines", in: manyExtents(340, "\n", true) + "\n"},
		{name: "341 lines", in: manyExtents(341, "\n", true), wantErr: ErrTooMany, extent: 340},
		{name: "empty", in: "", wantErr: ErrSyntax},
		{name: "only newline", in: "\n", wantErr: ErrSyntax},
		{name: "doubled final newline", in: "0 1 2\n\n", wantErr: ErrSyntax, extent: 1},
		{name: "empty line inside", in: "0 1 2\n\n3 4 5\n", wantErr: ErrSyntax, extent: 1},
		{name: "blank line", in: "0 1 2\n   \n", wantErr: ErrSyntax, extent: 1},
		{name: "two fields", in: "0 1\n", wantErr: ErrSyntax},
		{name: "trailing junk", in: "0 1 2 3\n", wantErr: ErrSyntax},
		{name: "plus", in: "+0 1 2\n", wantErr: ErrSyntax},
		{name: "hex", in: "0 0x10 2\n", wantErr: ErrSyntax},
		{name: "flag form", in: "0:1:2", wantErr: ErrSyntax},
		{name: "unmapped column 2", in: "0 4294967295 10\n", wantErr: ErrInvalidID},
		{name: "overlap", in: "0 100 10\n5 300 1\n", wantErr: ErrOverlap, extent: 1},
		{name: "zero count", in: "0 100 0\n", wantErr: ErrZeroCount},
		{name: "wrap", in: "0 4294967290 10\n", wantErr: ErrWrap},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseProcMap(tc.in)
			if tc.wantErr != nil {
				var me *MapError
				if !errors.Is(err, tc.wantErr) || !errors.As(err, &me) {
					t.Fatalf("ParseProcMap(%q) error = %v, want *MapError %v", tc.in, err, tc.wantErr)
				}
				if me.Extent != tc.extent {
					t.Errorf("ParseProcMap(%q) error names extent %d, want %d (%v)", tc.in, me.Extent, tc.extent, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseProcMap(%q): %v", tc.in, err)
			}
			if tc.want != nil {
				if d := cmp.Diff(tc.want, got.Extents()); d != "" {
					t.Errorf("ParseProcMap(%q) mismatch (-want +got):\n%s", tc.in, d)
				}
			}
			again, err := ParseProcMap(got.ProcString())
			if err != nil || !again.Equal(got) {
				t.Errorf("ParseProcMap(ProcString()) = %v, %v; want %v", again, err, got)
			}
		})
	}
}

func TestParseShownMap(t *testing.T) {
	t.Parallel()
	m, hidden, err := parseShownMap("         0 4294967295       1000\n      1000     101000         10\n")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]Extent{{1000, 101000, 10}}, m.Extents()); d != "" {
		t.Errorf("kept (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]Extent{{0, InvalidID, 1000}}, hidden); d != "" {
		t.Errorf("hidden (-want +got):\n%s", d)
	}
}

func TestNewMap(t *testing.T) {
	t.Parallel()
	in := []Extent{{0, 100000, 65536}}
	m, err := NewMap(in)
	if err != nil {
		t.Fatal(err)
	}
	in[0].Count = 1 // NewMap copies
	if got := m.Extents()[0].Count; got != 65536 {
		t.Errorf("map changed with its input: count %d", got)
	}
	m.Extents()[0].Count = 2 // Extents copies
	if got := m.Extents()[0].Count; got != 65536 {
		t.Errorf("map changed through Extents: count %d", got)
	}
	if _, err := NewMap(nil); !errors.Is(err, ErrEmpty) {
		t.Errorf("NewMap(nil) = %v, want ErrEmpty", err)
	}
	_, err = NewMap([]Extent{{0, 0, 1}, {1, 0, 1}})
	var me *MapError
	if !errors.As(err, &me) || me.Text != "1:0:1" || !errors.Is(err, ErrOverlap) {
		t.Errorf("NewMap overlap = %v, want *MapError for \"1:0:1\"", err)
	}
}

func TestToHostToNs(t *testing.T) {
	t.Parallel()
	m := mustMap(t, "1:300000:1000,0:100000:1,2000:0:10,4294967285:4294967285:10")
	tests := []struct {
		ns, host uint32
		ok       bool
	}{
		{0, 100000, true},
		{1, 300000, true},
		{1000, 300999, true},
		{1001, 0, false},
		{1999, 0, false},
		{2000, 0, true},
		{2009, 9, true},
		{2010, 0, false},
		{4294967284, 0, false},
		{4294967285, 4294967285, true},
		{4294967294, 4294967294, true},
		{4294967295, 0, false},
	}
	for _, tc := range tests {
		got, err := m.ToHost(tc.ns)
		if tc.ok {
			if err != nil || got != tc.host {
				t.Errorf("ToHost(%d) = %d, %v; want %d", tc.ns, got, err, tc.host)
			}
			back, err := m.ToNs(tc.host)
			if err != nil || back != tc.ns {
				t.Errorf("ToNs(%d) = %d, %v; want %d", tc.host, back, err, tc.ns)
			}
			continue
		}
		var ue *UnmappedError
		if !errors.Is(err, ErrUnmapped) || !errors.As(err, &ue) || ue.ID != tc.ns || ue.Host {
			t.Errorf("ToHost(%d) = %d, %v; want *UnmappedError", tc.ns, got, err)
		}
	}
	for _, h := range []uint32{99999, 100001, 10, 299999, 301000, 4294967295} {
		var ue *UnmappedError
		if _, err := m.ToNs(h); !errors.As(err, &ue) || !ue.Host || ue.ID != h {
			t.Errorf("ToNs(%d) error = %v, want *UnmappedError{Host: true}", h, err)
		}
	}
	var zero Map
	if _, err := zero.ToHost(0); !errors.Is(err, ErrUnmapped) {
		t.Errorf("zero Map ToHost(0) = %v, want ErrUnmapped", err)
	}
	if zero.String() != "" || !zero.IsZero() {
		t.Errorf("zero Map String() = %q", zero.String())
	}
	_, err := zero.ToNs(5)
	if err == nil || err.Error() != "userns: host id 5 not mapped by (empty)" {
		t.Errorf("zero Map ToNs error text = %v", err)
	}
}

func TestInvert(t *testing.T) {
	t.Parallel()
	m := mustMap(t, "0:100000:65536,70000:5:3")
	inv := m.Invert()
	if got, want := inv.String(), "100000:0:65536,5:70000:3"; got != want {
		t.Errorf("Invert = %s, want %s", got, want)
	}
	if d := cmp.Diff(m, inv.Invert()); d != "" {
		t.Errorf("Invert twice (-want +got):\n%s", d)
	}
}

func TestCompose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		inner, outer string
		want         string
	}{
		// ns2 under ns1 (kernel-semantics.md): root kuid 101000.
		{"nested", "0:1000:1000", "0:100000:65536", "0:101000:1000"},
		{"three deep", "0:0:10", "0:101000:1000", "0:101000:10"},
		{"split over two outer extents", "0:0:20", "0:500:10,10:900:10", "0:500:10,10:900:10"},
		{"split unsorted outer", "5:3:10", "10:900:10,0:500:10", "5:503:7,12:900:3"},
		{"partly uncovered", "0:90:20", "0:1000:100", "0:1090:10"},
		{"hole in outer", "0:0:30", "0:1000:10,20:2000:10", "0:1000:10,20:2000:10"},
		{"uncovered", "0:70000:10", "0:100000:65536", ""},
		{"identity outer", "0:100000:65536", "0:0:4294967295", "0:100000:65536"},
		{"top ids", "0:4294967290:4", "4294967290:7:4", "0:7:4"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := Compose(mustMap(t, tc.inner), mustMap(t, tc.outer))
			if err != nil {
				t.Fatalf("Compose(%s, %s): %v", tc.inner, tc.outer, err)
			}
			if got.String() != tc.want {
				t.Errorf("Compose(%s, %s) = %q, want %q", tc.inner, tc.outer, got, tc.want)
			}
		})
	}
}

func TestComposeTooMany(t *testing.T) {
	t.Parallel()
	// Each inner extent [3i, 3i+3) straddles two outer extents, so n
	// inner extents compose into 2n pieces.
	build := func(n int) (Map, Map) {
		var in, out []Extent
		for i := range n {
			in = append(in, Extent{NsID: uint32(10 * i), HostID: uint32(3 * i), Count: 3})
			out = append(out, Extent{NsID: uint32(3*i + 1), HostID: uint32(100000 + 3*i), Count: 3})
		}
		out = append(out, Extent{NsID: 0, HostID: 50000, Count: 1})
		im, err := NewMap(in)
		if err != nil {
			t.Fatal(err)
		}
		om, err := NewMap(out)
		if err != nil {
			t.Fatal(err)
		}
		return im, om
	}
	im, om := build(170)
	got, err := Compose(im, om)
	if err != nil || got.Len() != 340 {
		t.Fatalf("Compose into 340 extents = %d extents, %v", got.Len(), err)
	}
	im, om = build(171)
	if _, err := Compose(im, om); !errors.Is(err, ErrTooMany) {
		t.Errorf("Compose into 342 extents = %v, want ErrTooMany", err)
	}
}

func TestMarshalText(t *testing.T) {
	t.Parallel()
	m := mustMap(t, "0:100000:65536")
	b, _ := m.MarshalText()
	var back Map
	if err := back.UnmarshalText(b); err != nil || !back.Equal(m) {
		t.Errorf("UnmarshalText(%s) = %v, %v", b, back, err)
	}
	if err := back.UnmarshalText(nil); err != nil || !back.IsZero() {
		t.Errorf("UnmarshalText(empty) = %v, %v; want zero", back, err)
	}
	if err := back.UnmarshalText([]byte("x")); !errors.Is(err, ErrSyntax) {
		t.Errorf("UnmarshalText(x) = %v, want ErrSyntax", err)
	}
}
