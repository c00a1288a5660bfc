//go:build linux

package backup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/internal/testutil"
)

// TestRestoreXattrPolicy is issue 12, item 7: by default a restore writes
// user.* xattrs, POSIX ACLs and caps (translated), as GNU tar does, and
// leaves out the rest (trusted.overlay.redirect would redirect lookups of
// an overlayfs layer made from the tree), counting what it skipped.
// XattrsInclude brings them back; Verify follows the same policy.
func TestRestoreXattrPolicy(t *testing.T) {
	testutil.RequireRoot(t)
	arch := makeArchive(t, "", []member{{name: "f", data: "x", xattrs: map[string]string{
		"user.keep":                "1",
		"trusted.overlay.redirect": "/etc",
		"trusted.overlay.metacopy": "",
		XattrCaps:                  string(testutil.RawCaps(2, 0)),
		"system.posix_acl_access":  string(rawACL(1000, 1000)),
	}}})
	get := func(p, name string) (string, bool) {
		b := make([]byte, 256)
		n, err := unix.Lgetxattr(p, name, b)
		if errors.Is(err, unix.ENODATA) {
			return "", false
		}
		testutil.NoErr(t, err)
		return string(b[:n]), true
	}
	dir := testutil.TempDir(t)

	dest := filepath.Join(dir, "default")
	sum, err := Restore(context.Background(), bytes.NewReader(arch), dest, RestoreOptions{})
	testutil.NoErr(t, err)
	f := filepath.Join(dest, "f")
	if _, ok := get(f, "user.keep"); !ok {
		t.Error("user.keep not restored")
	}
	if _, ok := get(f, XattrCaps); !ok {
		t.Error("caps not restored")
	}
	if _, ok := get(f, "system.posix_acl_access"); !ok {
		t.Error("ACL not restored")
	}
	for _, n := range []string{"trusted.overlay.redirect", "trusted.overlay.metacopy"} {
		if v, ok := get(f, n); ok {
			t.Errorf("%s restored by default (%q)", n, v)
		}
	}
	if want := map[string]int64{"trusted.overlay.metacopy": 1, "trusted.overlay.redirect": 1}; !cmp.Equal(sum.XattrsSkipped, want) {
		t.Errorf("XattrsSkipped = %v, want %v", sum.XattrsSkipped, want)
	}
	diffs, err := Verify(context.Background(), bytes.NewReader(arch), dest, VerifyOptions{})
	if err != nil || len(diffs) != 0 {
		t.Errorf("verify under the same policy: %v %v, want clean", diffs, err)
	}

	dest = filepath.Join(dir, "trusted")
	sum, err = Restore(context.Background(), bytes.NewReader(arch), dest, RestoreOptions{XattrsInclude: []string{"trusted.overlay.*"}})
	testutil.NoErr(t, err)
	if v, _ := get(filepath.Join(dest, "f"), "trusted.overlay.redirect"); v != "/etc" || !cmp.Equal(sum.XattrsSkipped, map[string]int64{"user.keep": 1}) {
		t.Errorf("with XattrsInclude trusted.overlay.*: redirect %q, skipped %v", v, sum.XattrsSkipped)
	}
	if _, ok := get(filepath.Join(dest, "f"), "user.keep"); ok {
		t.Error("user.keep restored though the include patterns do not name it")
	}
	// Verify with the default policy ignores the tree's trusted.* too.
	if diffs, err := Verify(context.Background(), bytes.NewReader(arch), dest, VerifyOptions{XattrsInclude: []string{"*"}}); err != nil || len(diffs) != 1 || diffs[0].Name != "user.keep" {
		t.Errorf("verify with every xattr: %v %v, want user.keep missing", diffs, err)
	}

	_, err = Restore(context.Background(), bytes.NewReader(arch), filepath.Join(dir, "bad"), RestoreOptions{XattrsInclude: []string{"["}})
	if err == nil {
		t.Error("a malformed include pattern was accepted")
	}
}

// TestRestoreNoInheritedACL: a restore into an empty DEST that has a
// default ACL gives its entries the ACLs of the archive only (the staging
// directory inherited DEST's and passed it on); getfacl is the judge.
func TestRestoreNoInheritedACL(t *testing.T) {
	testutil.RequireTool(t, "setfacl", "getfacl")
	arch := makeArchive(t, "", []member{{name: "d/", typ: '5', mode: 0o755}, {name: "d/f", data: "x"}})
	dest := filepath.Join(testutil.TempDir(t), "dest")
	testutil.NoErr(t, os.Mkdir(dest, 0o755))
	if out, err := exec.Command("setfacl", "-d", "-m", "u:4321:rwx", dest).CombinedOutput(); err != nil {
		t.Fatalf("setfacl: %v: %s", err, out)
	}
	_, err := Restore(context.Background(), bytes.NewReader(arch), dest, RestoreOptions{})
	testutil.NoErr(t, err)
	out, err := exec.Command("getfacl", "-R", "-n", "-p", filepath.Join(dest, "d")).CombinedOutput()
	testutil.NoErr(t, err)
	if strings.Contains(string(out), "4321") {
		t.Errorf("restored entries inherited DEST's default ACL:\n%s", out)
	}
}

// TestBackupVerifyForeignSkip: --verify of a backup that dropped a foreign
// cap under ForeignCapsSkip does not count the drop as a difference.
func TestBackupVerifyForeignSkip(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "setcap")
	src := filepath.Join(testutil.TempDir(t), "src")
	testutil.NoErr(t, os.Mkdir(src, 0o755))
	f := filepath.Join(src, "ping")
	testutil.NoErr(t, os.WriteFile(f, []byte("x"), 0o755))
	testutil.NoErr(t, os.Chown(src, 100000, 100000))
	testutil.NoErr(t, os.Chown(f, 100000, 100000))
	if out, err := exec.Command("setcap", "cap_net_raw=ep", f).CombinedOutput(); err != nil { // host-scoped: foreign to the map
		t.Fatalf("setcap: %v: %s", err, out)
	}
	m := mustMap(t, "0:100000:65536")
	_, err := WriteFile(context.Background(), filepath.Join(filepath.Dir(src), "a.tar"), src, Options{UIDMap: m, ForeignCaps: ForeignCapsSkip, Verify: true})
	if err != nil {
		t.Errorf("backup --foreign-caps skip --verify: %v", err)
	}
}
