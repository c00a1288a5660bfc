package tarfmt

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/internal/testutil"
)

// TestXattrsRealTools decodes the xattr records bsdtar (LIBARCHIVE and
// SCHILY records) and GNU tar --xattrs (SCHILY records) write for a file,
// and finds the values the file has: each form on its own, and both
// together.
func TestXattrsRealTools(t *testing.T) {
	testutil.RequireTool(t, "tar", "bsdtar")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	want := map[string][]byte{
		"user.plain": []byte("text"),
		"user.bin":   {0, 0xff, '\n', '=', 0},
		"user.empty": {},
	}
	f := filepath.Join(dir, "f")
	if err := os.WriteFile(f, []byte("hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	for n, v := range want {
		if err := syscall.Setxattr(f, n, v, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, tool := range [][]string{
		{"bsdtar", "-cf", "-", "f"},
		{"tar", "--xattrs", "--xattrs-include=user.*", "--format=posix", "-cf", "-", "f"},
	} {
		cmd := exec.Command(tool[0], tool[1:]...)
		cmd.Dir = dir
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%q: %v", tool, err)
		}
		recs := memberRecords(t, out, "f")
		byPrefix := map[string]map[string]string{SchilyXattrPrefix: {}, LibarchiveXattrPrefix: {}}
		for k, v := range recs {
			for p := range byPrefix {
				if strings.HasPrefix(k, p) {
					byPrefix[p][k] = v
				}
			}
		}
		for _, tc := range []struct {
			name string
			recs map[string]string
		}{{"all", recs}, {"SCHILY", byPrefix[SchilyXattrPrefix]}, {"LIBARCHIVE", byPrefix[LibarchiveXattrPrefix]}} {
			if tc.name == "LIBARCHIVE" && tool[0] != "bsdtar" {
				continue
			}
			got, err := Xattrs(tc.recs)
			if err != nil {
				t.Fatalf("%s %s: Xattrs(%q): %v", tool[0], tc.name, tc.recs, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s %s: Xattrs(%q) (-want +got):\n%s", tool[0], tc.name, slices.Sorted(maps.Keys(tc.recs)), diff)
			}
		}
	}
}

// memberRecords returns the pax records of the member name of an archive.
func memberRecords(tb testing.TB, archive []byte, name string) map[string]string {
	tb.Helper()
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			tb.Fatalf("no member %s", name)
		}
		if err != nil {
			tb.Fatal(err)
		}
		if strings.TrimPrefix(h.Name, "./") == name {
			return h.PAXRecords
		}
	}
}
