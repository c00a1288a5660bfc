package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nscap/nscap/internal/testutil"
)

// TestShiftMapSources: the source map read from a live process's user
// namespace (--from-pid), the target from an OCI runtime config
// (--to-oci-config) with a gid map that differs from the uid map; getcap
// -n, getfacl -n and stat judge.
func TestShiftMapSources(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireOracle(t, "getcap", "setcap", "getfacl", "setfacl")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	root := filepath.Join(dir, "rootfs")
	testutil.NoErr(t, os.MkdirAll(filepath.Join(root, "bin"), 0o755))
	testutil.NoErr(t, os.WriteFile(filepath.Join(root, "bin/ping"), []byte("ping"), 0o4755))
	sh := func(argv ...string) string {
		t.Helper()
		out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", argv, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	sh("chown", "-R", "100000:100000", root)
	sh("chmod", "4755", filepath.Join(root, "bin/ping"))
	sh("setcap", "-n", "100000", "cap_net_raw=ep", filepath.Join(root, "bin/ping"))
	sh("setfacl", "-m", "u:100007:r,g:100008:r", filepath.Join(root, "bin"))

	pid := testutil.Nest(t, []string{"0:100000:65536"}, 0)[0]
	config := filepath.Join(dir, "config.json")
	testutil.NoErr(t, os.WriteFile(config, []byte(`{"linux":{
		"uidMappings":[{"containerID":0,"hostID":200000,"size":65536}],
		"gidMappings":[{"containerID":0,"hostID":300000,"size":65536}]}}`), 0o644))

	r := nscap(t, "", "shift", "--from-pid", strconv.Itoa(pid), "--to-oci-config", config, root)
	if r.Code != ExitOK {
		t.Fatalf("shift: %+v", r)
	}
	if got := sh("stat", "-c", "%a %u:%g", filepath.Join(root, "bin/ping")); got != "4755 200000:300000" {
		t.Errorf("bin/ping: %s, want 4755 200000:300000", got)
	}
	if got := sh("getcap", "-n", filepath.Join(root, "bin/ping")); !strings.HasSuffix(got, "cap_net_raw=ep [rootid=200000]") {
		t.Errorf("getcap: %s", got)
	}
	acl := sh("getfacl", "-n", "-p", "--omit-header", filepath.Join(root, "bin"))
	if !strings.Contains(acl, "user:200007:r--") || !strings.Contains(acl, "group:300008:r--") {
		t.Errorf("getfacl: ACL user ids move with the uid map, group ids with the gid map:\n%s", acl)
	}

	// And back with explicit maps: --gidmap-from differs from --from.
	r = nscap(t, "", "shift", "--from", "0:200000:65536", "--gidmap-from", "0:300000:65536", "--to", "0:100000:65536", root)
	if r.Code != ExitOK {
		t.Fatalf("shift back: %+v", r)
	}
	if got := sh("stat", "-c", "%a %u:%g", filepath.Join(root, "bin/ping")); got != "4755 100000:100000" {
		t.Errorf("bin/ping after the shift back: %s", got)
	}
	if got := sh("getcap", "-n", filepath.Join(root, "bin/ping")); !strings.HasSuffix(got, "cap_net_raw=ep [rootid=100000]") {
		t.Errorf("getcap after the shift back: %s", got)
	}

	// A process that is gone: a clear error, nothing done.
	if r := nscap(t, "", "shift", "--from-pid", "999999999", "--to", "0:200000:65536", root); r.Code == ExitOK || !strings.Contains(r.Stderr, "no such process") {
		t.Errorf("--from-pid of a process that is gone: %+v", r)
	}
}
