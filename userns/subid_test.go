package userns

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSubID(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/subuid")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user string
		uid  uint32
		want []SubIDRange
	}{
		{"alice", 1000, []SubIDRange{{100000, 65536}, {300000, 1000}}},
		{"bob", 1001, []SubIDRange{{165536, 65536}}},
		{"carol", 1002, []SubIDRange{{231072, 65536}}}, // by numeric uid
		{"", 1002, []SubIDRange{{231072, 65536}}},
		{"dave", 1003, nil},
	}
	for _, tc := range tests {
		got, err := ParseSubID(strings.NewReader(string(data)), tc.user, tc.uid)
		if err != nil {
			t.Fatalf("ParseSubID(%s): %v", tc.user, err)
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ParseSubID(%s, %d) (-want +got):\n%s", tc.user, tc.uid, d)
		}
	}
	for _, bad := range []struct {
		in   string
		want error
	}{
		{"alice:1:2\nbob:165536\n", ErrSyntax},
		{"alice:x:2\n", ErrSyntax},
		{":1:2\n", ErrSyntax},
		{"alice:1:0\n", ErrZeroCount},
		{"alice:4294967295:1\n", ErrWrap},
		{"alice:1:-2\n", ErrSyntax},
	} {
		if _, err := ParseSubID(strings.NewReader(bad.in), "alice", 1000); !errors.Is(err, bad.want) {
			t.Errorf("ParseSubID(%q) = %v, want %v", bad.in, err, bad.want)
		}
	}
	_, err = ParseSubID(strings.NewReader("alice:1:2\nbob:165536\n"), "alice", 1000)
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error %v does not name line 2", err)
	}
}

func TestReadSubID(t *testing.T) {
	t.Parallel()
	if _, err := ReadSubID("testdata/subuid", "dave", 1003); !errors.Is(err, ErrNoSubID) {
		t.Errorf("ReadSubID(dave) = %v, want ErrNoSubID", err)
	}
	if _, err := ReadSubID(filepath.Join(t.TempDir(), "none"), "alice", 1); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ReadSubID(missing) = %v, want ErrNotExist", err)
	}
	if _, err := ReadSubID("testdata/subuid-bad", "alice", 1); !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "subuid-bad") {
		t.Errorf("ReadSubID(bad) = %v, want ErrSyntax naming the file", err)
	}
}

func TestRootlessMap(t *testing.T) {
	t.Parallel()
	m, err := RootlessMap(1000, []SubIDRange{{100000, 65536}, {300000, 1000}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.String(), "0:1000:1,1:100000:65536,65537:300000:1000"; got != want {
		t.Errorf("RootlessMap = %s, want %s", got, want)
	}
	if _, err := RootlessMap(100005, []SubIDRange{{100000, 65536}}); !errors.Is(err, ErrOverlap) {
		t.Errorf("RootlessMap with own uid in range = %v, want ErrOverlap", err)
	}
	m, err = RootlessMap(5, []SubIDRange{{10, 4294967000}, {0, 5}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.String(), "0:5:1,1:10:4294967000,4294967001:0:5"; got != want {
		t.Errorf("RootlessMap = %s, want %s", got, want)
	}
	m, err = RootlessMap(5, []SubIDRange{{10, 4294967200}, {0, 5}, {4294967290, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := m.String(), "0:5:1,1:10:4294967200,4294967201:0:5,4294967206:4294967290:2"; got != want {
		t.Errorf("RootlessMap (top) = %s, want %s", got, want)
	}
}

func TestParseOCIConfig(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/config.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	uid, gid, err := ParseOCIConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := uid.String(), "0:100000:1,1:300000:65535"; got != want {
		t.Errorf("uid = %s, want %s", got, want)
	}
	if got, want := gid.String(), "0:100000:65536"; got != want {
		t.Errorf("gid = %s, want %s", got, want)
	}
	if d := cmp.Diff(uid, mustFromOCI(t, uid)); d != "" {
		t.Errorf("FromOCI(OCI()) (-want +got):\n%s", d)
	}

	bad, _ := os.ReadFile("testdata/config-overlap.json")
	_, _, err = ParseOCIConfig(strings.NewReader(string(bad)))
	if !errors.Is(err, ErrOverlap) || !strings.Contains(err.Error(), "uidMappings") {
		t.Errorf("overlapping config = %v, want ErrOverlap naming uidMappings", err)
	}
	uid, gid, err = ParseOCIConfig(strings.NewReader(`{"ociVersion":"1.2.0"}`))
	if err != nil || !uid.IsZero() || !gid.IsZero() {
		t.Errorf("config without linux = %v, %v, %v; want zero maps", uid, gid, err)
	}
	if _, _, err := ParseOCIConfig(strings.NewReader(`{"linux":`)); err == nil {
		t.Error("truncated config parsed")
	}
}

func mustFromOCI(t *testing.T, m Map) Map {
	t.Helper()
	back, err := FromOCI(m.OCI())
	if err != nil {
		t.Fatal(err)
	}
	return back
}

func TestFixtureMaps(t *testing.T) {
	t.Parallel()
	for file, want := range map[string]string{
		"uid_map-container": "0:100000:65536",
		"uid_map-init":      "0:0:4294967295",
		"uid_map-ns5":       "0:100000:1,1:300000:1000",
	} {
		b, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseProcMap(string(b))
		if err != nil || m.String() != want {
			t.Errorf("ParseProcMap(%s) = %v, %v; want %s", file, m, err, want)
		}
	}
	b, _ := os.ReadFile("testdata/uid_map-unmapped")
	if _, err := ParseProcMap(string(b)); !errors.Is(err, ErrInvalidID) {
		t.Errorf("ParseProcMap(uid_map-unmapped) = %v, want ErrInvalidID", err)
	}
}

func TestUnowned(t *testing.T) {
	t.Parallel()
	ranges := []SubIDRange{{400000, 65536}, {465536, 1000}, {600000, 10}}
	tests := []struct {
		m    string
		want string
	}{
		{"0:400000:65536", ""},
		{"0:1000:1,1:400000:65536", ""},
		{"0:400000:66536", ""}, // spans two adjacent ranges
		{"0:400000:70000", "466536-469999"},
		{"0:399999:2", "399999"},
		{"0:1000:2", "1001"},
		{"0:0:1", "0"},
		{"0:599990:30", "599990-599999 600010-600019"},
		{"0:300000:10,10:300010:5", "300000-300014"},
		{"0:4294967290:5", "4294967290-4294967294"},
	}
	for _, tc := range tests {
		m, err := ParseMap(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range Unowned(m, 1000, ranges) {
			got = append(got, r.String())
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("Unowned(%s) = %q, want %q", tc.m, g, tc.want)
		}
	}
}

func TestHostRanges(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"0:1000:1,1:400000:65536": "1000 400000-465535",
		"0:400000:10,10:400010:5": "400000-400014",
		"0:5:1,1:0:1":             "0 5",
		"0:5:1,1:6:1":             "5-6",
	} {
		m, err := ParseMap(in)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range m.HostRanges() {
			got = append(got, r.String())
		}
		if g := strings.Join(got, " "); g != want {
			t.Errorf("ParseMap(%q).HostRanges() = %q, want %q", in, g, want)
		}
	}
}
