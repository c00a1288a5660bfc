package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nscap/nscap/internal/testutil"
)

// TestBackupRootlessCLI: an unprivileged user owning the subordinate range
// of a rootless container backs up its rootfs through the helper user
// namespace, root-only files (etc/shadow 0600, a 0700 home) included; the
// archive lists (GNU tar -tvv with xattrs, the oracle) exactly as root's
// backup with the same maps does, and etc/shadow's content is there.
// Without the helper the user gets "permission denied"; a map outside its
// ranges is refused before anything is read.
func TestBackupRootlessCLI(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "tar", "setcap", "setfacl")
	const base = 470000
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir)
	p := func(n string) string { return filepath.Join(dir, n) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	rootfs := p("rootfs")
	for _, d := range []string{"bin", "etc", "home/user"} {
		must(os.MkdirAll(filepath.Join(rootfs, d), 0o755))
	}
	files := map[string]os.FileMode{"bin/ping": 0o755, "etc/shadow": 0o600, "etc/gshadow": 0o640, "etc/passwd": 0o644, "home/user/secret": 0o600}
	for n, mode := range files {
		must(os.WriteFile(filepath.Join(rootfs, n), []byte("content of "+n), mode))
	}
	must(filepath.Walk(rootfs, func(q string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(q, base, base)
	}))
	must(os.Chown(filepath.Join(rootfs, "etc/gshadow"), base, base+42))
	for _, n := range []string{"home/user", "home/user/secret"} {
		must(os.Chown(filepath.Join(rootfs, n), base+1000, base+1000))
	}
	must(os.Chmod(filepath.Join(rootfs, "home/user"), 0o700))
	for _, n := range []string{"bin/ping", "etc/shadow", "etc/gshadow", "etc/passwd", "home/user/secret"} {
		must(os.Chmod(filepath.Join(rootfs, n), files[n]))
	}
	if out, err := exec.Command("setcap", "-n", fmt.Sprint(base), "cap_net_raw=ep", filepath.Join(rootfs, "bin/ping")).CombinedOutput(); err != nil {
		t.Fatalf("setcap: %v: %s", err, out)
	}
	if out, err := exec.Command("setfacl", "-m", fmt.Sprintf("u:%d:r", base+1000), filepath.Join(rootfs, "etc/passwd")).CombinedOutput(); err != nil {
		t.Fatalf("setfacl: %v: %s", err, out)
	}
	maps := fmt.Sprintf("0:%d:65536", base)
	if r := nscap(t, "", "backup", "-q", "--uidmap", maps, "-o", p("root.tar"), rootfs); r.Code != ExitOK {
		t.Fatalf("backup as root = %+v", r)
	}

	u := testutil.User(t, testutil.UserOptions{Prefix: "clb", SubStart: base, SubCount: 65536})
	out := p("out")
	must(os.Mkdir(out, 0o700))
	must(os.Chown(out, u.UID, u.GID))
	res := map[string]result{
		"helper":  nscapAs(t, u, nil, "backup", "--uidmap", maps, "-o", filepath.Join(out, "ct.tar"), rootfs),
		"verify":  nscapAs(t, u, nil, "backup", "-q", "--verify", "--uidmap", maps, "-o", filepath.Join(out, "v.tar.zst"), rootfs),
		"never":   nscapAs(t, u, nil, "backup", "--helper", "never", "--uidmap", maps, "-o", filepath.Join(out, "never.tar"), rootfs),
		"dry":     nscapAs(t, u, nil, "backup", "--dry-run", "--uidmap", maps, rootfs),
		"stdout":  nscapAs(t, u, nil, "backup", "-q", "--uidmap", maps, "-o", "-", rootfs),
		"outside": nscapAs(t, u, nil, "backup", "--uidmap", fmt.Sprintf("0:%d:65536", base+100000), "-o", filepath.Join(out, "outside.tar"), rootfs),
	}
	for k, r := range res {
		t.Logf("%s: exit %d, %d bytes on stdout, stderr %q", k, r.Code, len(r.Stdout), r.Stderr)
	}
	if r := res["helper"]; r.Code != ExitOK || !strings.Contains(r.Stderr, "backup: 10 entries (5 files, 5 dirs") || !strings.Contains(r.Stderr, "1 caps") {
		t.Fatalf("backup as %s through the helper = %+v, want 10 entries and 1 cap", u.Name, r)
	}
	if r := res["dry"]; r.Code != ExitOK || !strings.Contains(r.Stderr, "dry run, no archive written") || !strings.Contains(r.Stderr, "10 entries") {
		t.Errorf("backup --dry-run as %s = %+v", u.Name, r)
	}
	if r := res["stdout"]; r.Code != ExitOK || !strings.Contains(r.Stdout, "content of etc/shadow") {
		t.Errorf("backup -o - as %s: exit %d, %d bytes, stderr %q", u.Name, r.Code, len(r.Stdout), r.Stderr)
	}
	if r := res["verify"]; r.Code != ExitOK {
		t.Errorf("backup --verify as %s = %+v", u.Name, r)
	}
	if r := res["never"]; r.Code != ExitError || !strings.Contains(r.Stderr, "permission denied") {
		t.Errorf("backup --helper never as %s = %+v, want permission denied", u.Name, r)
	}
	if r := res["outside"]; r.Code != ExitError || !strings.Contains(r.Stderr, "not the caller's own id") || !strings.Contains(r.Stderr, "/etc/subuid") {
		t.Errorf("backup outside the user's ranges = %+v, want a refusal naming /etc/subuid", r)
	}
	for _, n := range []string{"never.tar", "outside.tar"} {
		if _, err := os.Stat(filepath.Join(out, n)); err == nil {
			t.Errorf("%s was written", n)
		}
	}
	list := func(a string) string {
		t.Helper()
		out, err := exec.Command("tar", "--xattrs", "--xattrs-include=*", "--acls", "--numeric-owner", "-tvvf", a).CombinedOutput()
		if err != nil {
			t.Fatalf("tar -tvvf %s: %v: %s", a, err, out)
		}
		return string(out)
	}
	if got, want := list(filepath.Join(out, "ct.tar")), list(p("root.tar")); got != want {
		t.Errorf("the user's archive lists differently from root's:\n--- root\n%s--- user\n%s", want, got)
	}
	// The global header records the caller's maps, not the helper's view.
	head, err := os.ReadFile(filepath.Join(out, "ct.tar"))
	if err != nil || !strings.Contains(string(head[:min(len(head), 1024)]), " uidmap="+maps+" gidmap="+maps+" ") {
		t.Errorf("the archive's global header does not record uidmap=%s: %v", maps, err)
	}
	shadow, err := exec.Command("tar", "-xOf", filepath.Join(out, "ct.tar"), "./etc/shadow").Output()
	if err != nil || string(shadow) != "content of etc/shadow" {
		t.Errorf("etc/shadow in the user's archive: %q, %v", shadow, err)
	}
}
