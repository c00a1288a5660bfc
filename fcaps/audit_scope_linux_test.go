package fcaps_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
)

// scopeTree builds a container rootfs at host uid base (root-owned
// etc/passwd, bin), with:
//
//	opt/nested/tool  owned by container uid 1000, caps scoped to the
//	                 namespace whose root is container uid 1000
//	bin/ctrtool      owned by the container root, same nested scope
//	opt/nested/up    owned by container uid 1000, caps scoped to the
//	                 container's own namespace (rev3 rootid base)
//
// opt/nested is owned by container uid 1000, as a nested namespace's
// own tree is.
func scopeTree(t *testing.T, dir string, base int) string {
	t.Helper()
	root := filepath.Join(dir, "rootfs")
	nested := base + 1000
	for _, d := range []struct {
		rel string
		uid int
	}{{"", base}, {"etc", base}, {"bin", base}, {"opt", base}, {"opt/nested", nested}} {
		p := filepath.Join(root, d.rel)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		testutil.NoErr(t, os.Chown(p, d.uid, d.uid))
		testutil.NoErr(t, os.Chmod(p, 0o755))
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"
	files := []struct {
		rel  string
		uid  int
		caps string
	}{
		{"etc/passwd", base, ""},
		{"opt/nested/tool", nested, fmt.Sprintf("cap_net_raw+ep@%d", nested)},
		{"bin/ctrtool", base, fmt.Sprintf("cap_net_raw+ep@%d", nested)},
		{"opt/nested/up", nested, fmt.Sprintf("cap_net_raw+ep@%d", base)},
	}
	for _, f := range files {
		p := filepath.Join(root, f.rel)
		if err := os.WriteFile(p, []byte(passwd), 0o644); err != nil {
			t.Fatal(err)
		}
		testutil.NoErr(t, os.Chown(p, f.uid, f.uid))
		testutil.NoErr(t, os.Chmod(p, 0o755))
		if f.caps != "" {
			if err := syscall.Setxattr(p, fcaps.AttrName, corpusValue(t, f.caps), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}

// TestAuditNestedScope: real nested namespaces (container root at host
// 3200000, nested root at its uid 1000). A file owned by the nested root
// with caps scoped to the nested namespace is not writable by non-root;
// nor is one owned by the container root (an ancestor); caps of the
// container's namespace on a file the nested root owns are. The map is
// found from the live namespace; without it, from the rootfs (a guess),
// and the nested scope is still named.
func TestAuditNestedScope(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	const base = 3200000
	root := scopeTree(t, dir, base)

	check := func(t *testing.T, opts fcaps.AuditOptions, wantIn string, wantSev string) {
		t.Helper()
		got := map[string]fcaps.Finding{}
		for _, f := range auditTree(t, root, opts) {
			got[f.Rel+" "+f.Rule.ID] = f
		}
		for _, rel := range []string{"opt/nested/tool", "bin/ctrtool"} {
			if f, ok := got[rel+" NSCAP002"]; ok {
				t.Errorf("%s: %s %s", rel, f.Rule.ID, f.Message)
			}
			inv := got[rel+" NSCAP000"]
			if !strings.Contains(inv.Message, "rootid 3201000 (container uid 1000)") ||
				!strings.Contains(inv.Message, "honoured in the namespace whose root is container uid 1000") {
				t.Errorf("%s: inventory message %q", rel, inv.Message)
			}
			if in := strings.Join(inv.Scope.Strings(), ","); !strings.Contains(in, wantIn) {
				t.Errorf("%s: honoured in %q, want %q", rel, in, wantIn)
			}
			if inv.RootIDInContainer == nil || *inv.RootIDInContainer != 1000 {
				t.Errorf("%s: RootIDInContainer %v, want 1000", rel, inv.RootIDInContainer)
			}
		}
		up, ok := got["opt/nested/up NSCAP002"]
		if !ok {
			t.Fatalf("opt/nested/up: no NSCAP002: %v", got)
		}
		if up.Severity().String() != wantSev || !strings.Contains(up.Message, "owned by non-root uid 1000 in the container (host 3201000)") {
			t.Errorf("opt/nested/up: %s %q, want %s naming container uid 1000", up.Severity(), up.Message, wantSev)
		}
		if up.OwnerInContainer == nil || *up.OwnerInContainer != 1000 || up.Owner != base+1000 {
			t.Errorf("opt/nested/up: owner %d (container %v)", up.Owner, up.OwnerInContainer)
		}
	}

	t.Run("live", func(t *testing.T) {
		pids := testutil.Nest(t, []string{fmt.Sprintf("0:%d:65536", base), "0:1000:2000"}, 0)
		tree, err := userns.Tree()
		if err != nil {
			t.Fatal(err)
		}
		choice, err := fcaps.InferMap(root, fcaps.InferOptions{Namespaces: tree})
		if err != nil {
			t.Fatal(err)
		}
		if choice.Source != fcaps.MapLiveNamespace || choice.Guessed || choice.UIDMap.String() != "0:3200000:65536" {
			t.Fatalf("InferMap = %+v, want the live namespace's map", choice)
		}
		var st syscall.Stat_t
		testutil.NoErr(t, syscall.Stat(fmt.Sprintf("/proc/%d/ns/user", pids[1]), &st))
		check(t, choice.Apply(fcaps.AuditOptions{Namespaces: tree}), userns.NSRef{Inode: st.Ino}.String(), "critical")
	})
	t.Run("not-live", func(t *testing.T) {
		choice, err := fcaps.InferMap(root, fcaps.InferOptions{Namespaces: []*userns.Node{}})
		if err != nil {
			t.Fatal(err)
		}
		if choice.Source != fcaps.MapRootfsOwner || !choice.Guessed || choice.UIDMap.String() != "0:3200000:65536" {
			t.Fatalf("InferMap = %+v, want a guess from the rootfs", choice)
		}
		check(t, choice.Apply(fcaps.AuditOptions{Namespaces: []*userns.Node{}}), "container-uid:1000", "low")
		// Given, the same map is no guess.
		m, _ := userns.ParseMap("0:3200000:65536")
		check(t, fcaps.AuditOptions{UIDMap: m, Namespaces: []*userns.Node{}}, "container-uid:1000", "critical")
	})
}

// TestInferMap: the sources of the map, in order.
func TestInferMap(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	mk := func(rel string, uid int) string {
		p := filepath.Join(dir, rel)
		testutil.NoErr(t, os.MkdirAll(p, 0o755))
		testutil.NoErr(t, os.Chown(p, uid, uid))
		return p
	}
	host := mk("host", 0)
	bare := mk("bare", 250000) // no etc/passwd
	ctr := mk("ctr", 250000)
	mk("ctr/etc", 250000)
	pw := filepath.Join(ctr, "etc/passwd")
	testutil.NoErr(t, os.WriteFile(pw, []byte("root:x:0:0::/:/bin/sh\nbig:x:70000:70001::/:/bin/sh\n"), 0o644))
	testutil.NoErr(t, os.Chown(pw, 250000, 250000))
	bundle := mk("bundle", 0)
	rootfs := mk("bundle/rootfs", 260000)
	cfg := `{"ociVersion":"1.0.2","root":{"path":"rootfs"},"linux":{"uidMappings":[{"containerID":0,"hostID":260000,"size":65536}],"gidMappings":[{"containerID":0,"hostID":270000,"size":65536}]}}`
	testutil.NoErr(t, os.WriteFile(filepath.Join(bundle, "config.json"), []byte(cfg), 0o644))

	for _, tc := range []struct {
		root, oci    string
		src          fcaps.MapSource
		uid, gid     string
		guessed      bool
		reasonSubstr string
	}{
		{host, "", fcaps.MapNone, "", "", false, "owned by uid 0"},
		{bare, "", fcaps.MapNone, "", "", false, "no etc/passwd"},
		{ctr, "", fcaps.MapRootfsOwner, "0:250000:70001", "0:250000:70002", true, "highest uid in etc/passwd is 70000"},
		{rootfs, "", fcaps.MapOCIConfig, "0:260000:65536", "0:270000:65536", false, "config.json"},
		{ctr, filepath.Join(bundle, "config.json"), fcaps.MapOCIConfig, "0:260000:65536", "0:270000:65536", false, "config.json"},
	} {
		c, err := fcaps.InferMap(tc.root, fcaps.InferOptions{OCIConfig: tc.oci})
		if err != nil {
			t.Fatalf("InferMap(%s): %v", tc.root, err)
		}
		if c.Source != tc.src || c.UIDMap.String() != tc.uid || c.GIDMap.String() != tc.gid || c.Guessed != tc.guessed || !strings.Contains(c.Reason, tc.reasonSubstr) {
			t.Errorf("InferMap(%s, oci %q) = %+v, want %s %s %s guessed=%v reason ~ %q", tc.root, tc.oci, c, tc.src, tc.uid, tc.gid, tc.guessed, tc.reasonSubstr)
		}
	}
	if _, err := fcaps.InferMap(ctr, fcaps.InferOptions{OCIConfig: filepath.Join(dir, "nope.json")}); err == nil {
		t.Error("InferMap with a missing --oci-config: no error")
	}
}
