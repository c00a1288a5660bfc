package fcaps_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/xattrfmt"
)

// imageLayers are three layers: the base (gzip) with capped files, one
// (zstd) whose whiteouts delete two of them and replaces a third without
// caps, one (plain) built in a user namespace whose root was host uid
// 100000, which left a revision-3 value with that rootid.
func imageLayers(tb testing.TB) []testutil.Layer {
	tb.Helper()
	v2 := func(text string) []byte {
		c, err := xattrfmt.ParseFileText(text)
		testutil.NoErr(tb, err)
		b, err := xattrfmt.Encode(c)
		testutil.NoErr(tb, err)
		return b
	}
	v3 := func(text string, rootid uint32) []byte {
		c, err := xattrfmt.ParseFileText(text)
		testutil.NoErr(tb, err)
		c.Revision, c.RootID = xattrfmt.Revision3, rootid
		b, err := xattrfmt.Encode(c)
		testutil.NoErr(tb, err)
		return b
	}
	dir := func(name string) testutil.LayerFile {
		return testutil.LayerFile{Name: name, Dir: true, Mode: 0o755}
	}
	return []testutil.Layer{
		{Compression: "gzip", Files: []testutil.LayerFile{
			dir("bin"), dir("usr"), dir("usr/bin"), dir("opt"), dir("opt/app"),
			{Name: "bin/ping", Mode: 0o755, Cap: v2("cap_net_raw+ep")},
			{Name: "usr/bin/hidden", Mode: 0o755, Cap: v2("cap_sys_admin+ep")},
			{Name: "usr/bin/replaced", Mode: 0o755, Cap: v2("cap_net_admin+ep")},
			{Name: "opt/app/x", Mode: 0o755, Cap: v2("cap_sys_ptrace+ep")},
			{Name: "usr/bin/userowned", Mode: 0o755, UID: 1000, Cap: v2("cap_net_raw+ep")},
		}},
		{Compression: "zstd", Files: []testutil.LayerFile{
			{Name: "usr/bin/.wh.hidden", Mode: 0o644},
			{Name: "opt/app/.wh..wh..opq", Mode: 0o644},
			{Name: "opt/app/y", Mode: 0o755},
			{Name: "usr/bin/replaced", Mode: 0o755},
		}},
		{Files: []testutil.LayerFile{
			dir("usr/local"), dir("usr/local/bin"),
			{Name: "usr/local/bin/hostcap", Mode: 0o755, Cap: v3("cap_net_bind_service+ep", 100000)},
		}},
	}
}

func auditImagePath(t *testing.T, p string) ([]fcaps.Finding, error) {
	t.Helper()
	img, err := fcaps.OpenImage(p)
	if err != nil {
		return nil, err
	}
	defer func() { _ = img.Close() }()
	var got []fcaps.Finding
	err = fcaps.AuditImage(context.Background(), img, "img", fcaps.AuditOptions{}, func(f fcaps.Finding) error {
		got = append(got, f)
		return nil
	})
	return got, err
}

// imageSummary reduces findings to "PATH RULE SEVERITY LAYER".
func imageSummary(fs []fcaps.Finding) []string {
	var out []string
	for _, f := range fs {
		out = append(out, strings.Join([]string{f.Rel, f.Rule.ID, f.Severity().String(), f.Layer}, " "))
	}
	slices.Sort(out)
	return out
}

// TestAuditImage audits a generated OCI layout, the same as an OCI archive
// and as a docker save tarball: the layers are merged in order with their
// whiteouts (a deleted, an opaque-hidden and a replaced capped file are
// not live), each finding names its layer, and the host rootid is
// NSCAP009.
func TestAuditImage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	oci := testutil.WriteOCILayout(t, layout, "example:1", imageLayers(t))
	testutil.TarDir(t, layout, filepath.Join(dir, "oci.tar"))
	docker := testutil.WriteDockerArchive(t, filepath.Join(dir, "docker.tar"), "example:1", imageLayers(t))

	want := func(digest func(i int) string) []string {
		return []string{
			"bin/ping NSCAP000 info " + digest(0),
			"usr/bin/userowned NSCAP000 info " + digest(0),
			"usr/bin/userowned NSCAP002 critical " + digest(0),
			"usr/local/bin/hostcap NSCAP000 info " + digest(2),
			"usr/local/bin/hostcap NSCAP009 medium " + digest(2),
		}
	}
	for _, tc := range []struct {
		name, path, kind string
		digest           func(int) string
	}{
		{"oci-layout", layout, fcaps.ImageOCILayout, func(i int) string { return oci[i].Digest }},
		{"oci-archive", filepath.Join(dir, "oci.tar"), fcaps.ImageOCIArchive, func(i int) string { return oci[i].Digest }},
		{"docker-archive", filepath.Join(dir, "docker.tar"), fcaps.ImageDockerArchive, func(i int) string { return docker[i].DiffID }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			img, err := fcaps.OpenImage(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			kind, n := img.Kind, len(img.Manifests)
			_ = img.Close()
			if kind != tc.kind || n != 1 {
				t.Errorf("OpenImage: kind %s, %d manifests; want %s, 1", kind, n, tc.kind)
			}
			got, err := auditImagePath(t, tc.path)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want(tc.digest), imageSummary(got)); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
			for _, f := range got {
				switch {
				case f.Rule.ID == fcaps.RuleHostRootID && !strings.Contains(f.Message, "honoured nowhere the image will run"):
					t.Errorf("NSCAP009 message %q", f.Message)
				case f.Rel == "bin/ping" && strings.Join(f.Scope.Strings(), ",") != "container-root":
					t.Errorf("bin/ping honoured in %v, want container-root", f.Scope.Strings())
				case f.Path != "img:"+f.Rel:
					t.Errorf("path %q, want img:%s", f.Path, f.Rel)
				}
			}
		})
	}

	t.Run("not-an-image", func(t *testing.T) {
		t.Parallel()
		// A tree with an index.json of its own is no image.
		web := filepath.Join(t.TempDir(), "web")
		testutil.NoErr(t, os.MkdirAll(web, 0o755))
		testutil.NoErr(t, os.WriteFile(filepath.Join(web, "index.json"), []byte("{}"), 0o644))
		for _, p := range []string{dir, filepath.Join(layout, "oci-layout"), web} {
			if _, err := fcaps.OpenImage(p); !errors.Is(err, fcaps.ErrNotImage) {
				t.Errorf("OpenImage(%s) = %v, want ErrNotImage", p, err)
			}
		}
	})
	t.Run("corrupt-blob", func(t *testing.T) {
		t.Parallel()
		bad := filepath.Join(t.TempDir(), "layout")
		built := testutil.WriteOCILayout(t, bad, "bad", imageLayers(t))
		// Flip a byte of the top layer (plain tar) inside a file's data:
		// the tar still reads, the digest does not match.
		p := filepath.Join(bad, "blobs", "sha256", strings.TrimPrefix(built[2].Digest, "sha256:"))
		data, err := os.ReadFile(p)
		testutil.NoErr(t, err)
		i := strings.Index(string(data), "#!/bin/sh")
		data[i] = 'X'
		testutil.NoErr(t, os.WriteFile(p, data, 0o644))
		got, err := auditImagePath(t, bad)
		if !errors.Is(err, fcaps.ErrBadArchive) || !strings.Contains(err.Error(), "layer 3") {
			t.Errorf("corrupt layer: error %v, want ErrBadArchive naming layer 3", err)
		}
		// The lower layers' findings are still reported.
		if len(got) == 0 {
			t.Error("no findings from the intact layers")
		}
	})
}
