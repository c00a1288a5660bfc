package userns

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nscap/nscap/internal/testutil"
)

var rootidRE = regexp.MustCompile(`\[rootid=(\d+)\]`)

// kernelRootID has setcap, run as root inside pid's user namespace, write a
// revision-2 capability on a fresh file owned by that root (rootid uid,
// gid); the kernel stores it with the rootid of the namespace's root,
// which getcap -n then shows on the host.
func kernelRootID(t *testing.T, dir string, pid int, uid, gid uint32) uint32 {
	t.Helper()
	f := filepath.Join(dir, "f"+strconv.Itoa(pid))
	if err := os.WriteFile(f, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(f, int(uid), int(gid)); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("nsenter", "-U", "-t", strconv.Itoa(pid), "setcap", "cap_net_raw+ep", f).CombinedOutput()
	if err != nil {
		t.Fatalf("setcap in namespace of %d: %v: %s", pid, err, out)
	}
	out, err = exec.Command("getcap", "-n", f).CombinedOutput()
	if err != nil {
		t.Fatalf("getcap -n: %v: %s", err, out)
	}
	m := rootidRE.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("getcap -n %s: no rootid in %q", f, out)
	}
	r, _ := strconv.ParseUint(m[1], 10, 32)
	return uint32(r)
}

func TestNestedRootOf(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "nsenter", "setcap", "getcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	// Let the namespaces' roots reach the files.
	for _, d := range []string{dir, filepath.Dir(dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	maps := []string{"0:100000:65536", "0:1000:1000", "0:5:10"}
	pids := testutil.Nest(t, maps, 0)
	wantRoot := []uint32{100000, 101000, 101005}
	wantOwner := []uint32{0, 100000, 101000}
	self, err := Inspect(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !self.Self || self.Depth != 0 || self.RootID != 0 || !self.RootVisible {
		t.Errorf("Inspect(self) = %+v", self)
	}
	for i, pid := range pids {
		root, err := RootOf(pid)
		if err != nil {
			t.Fatalf("RootOf(level %d): %v", i+1, err)
		}
		if root != wantRoot[i] {
			t.Errorf("RootOf(level %d) = %d, want %d", i+1, root, wantRoot[i])
		}
		uid, gid, err := ReadMaps(pid)
		if err != nil {
			t.Fatal(err)
		}
		gidRoot, _ := gid.ToHost(0)
		if k := kernelRootID(t, dir, pid, root, gidRoot); k != root {
			t.Errorf("level %d: kernel stored rootid %d, RootOf gave %d", i+1, k, root)
		}
		ns, err := Inspect(pid)
		if err != nil {
			t.Fatal(err)
		}
		if ns.Depth != i+1 || !ns.Descendant || ns.Self || ns.RootID != root || !ns.RootVisible || !ns.UIDMap.Equal(uid) {
			t.Errorf("Inspect(level %d) = %+v", i+1, ns)
		}
		if ns.OwnerUID != wantOwner[i] {
			t.Errorf("Inspect(level %d).OwnerUID = %d, want %d", i+1, ns.OwnerUID, wantOwner[i])
		}
		if last := ns.Parents[len(ns.Parents)-1]; last.Inode != self.Inode || last.Dev != self.Dev {
			t.Errorf("Inspect(level %d): chain ends at %v, want %v", i+1, last, self.NSRef)
		}
		if ns.ID == 0 {
			t.Errorf("Inspect(level %d): no NS_GET_ID", i+1)
		}
	}
	// ns3's map as the host reads it: kuids.
	uid, _, _ := ReadMaps(pids[2])
	if got := uid.String(); got != "0:101005:10" {
		t.Errorf("ReadMaps(level 3) uid = %s, want 0:101005:10", got)
	}
	// Read from inside ns2: ns3's map relative to ns2, ns2's own map
	// relative to ns1 (the kernel's rule for the reader's own namespace).
	out, err := exec.Command("nsenter", "-U", "-t", strconv.Itoa(pids[1]), "cat",
		procPath(pids[2], "uid_map"), procPath(pids[1], "uid_map")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Fields(string(out)); strings.Join(got, " ") != "0 5 10 0 1000 1000" {
		t.Errorf("maps read in ns2 = %q", out)
	}
}

func TestTree(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "nsenter", "cat")
	full := testutil.Nest(t, []string{"0:100000:65536", "0:1000:1000"}, 0)
	// Level 1 exits: its namespace lives on through level 2's.
	ghost := testutil.Nest(t, []string{"0:200000:65536", "0:7:100"}, 1)
	roots, err := Tree()
	if err != nil {
		t.Fatal(err)
	}
	if len(roots) == 0 || !roots[0].Self {
		t.Fatalf("Tree: first root is not the caller's namespace: %+v", roots)
	}
	byPID := map[int]*Node{}
	var walk func(n *Node, depth int)
	walk = func(n *Node, depth int) {
		for _, p := range n.PIDs {
			byPID[p] = n
		}
		for _, c := range n.Children {
			if c.Parent != n {
				t.Errorf("node %v: child %v has parent %v", n.NSRef, c.NSRef, c.Parent)
			}
			walk(c, depth+1)
		}
	}
	walk(roots[0], 0)
	check := func(name string, n *Node, root uint32, uidMap string) {
		t.Helper()
		if n == nil {
			t.Fatalf("%s: not in the tree", name)
		}
		if n.MapErr != nil || !n.RootVisible || n.RootID != root || n.UIDMap.String() != uidMap {
			t.Errorf("%s: root %d (visible %v), map %s, err %v; want root %d, map %s", name, n.RootID, n.RootVisible, n.UIDMap, n.MapErr, root, uidMap)
		}
	}
	check("init", roots[0], 0, roots[0].UIDMap.String())
	check("ns1", byPID[full[0]], 100000, "0:100000:65536")
	check("ns2", byPID[full[1]], 101000, "0:101000:1000")
	if byPID[full[1]].Parent != byPID[full[0]] || byPID[full[0]].Parent != roots[0] {
		t.Errorf("ns2 is not below ns1 below the caller's namespace")
	}
	child := byPID[ghost[1]]
	check("child of empty namespace", child, 200007, "0:200007:100")
	empty := child.Parent
	check("empty namespace", empty, 200000, "0:200000:65536")
	if len(empty.PIDs) != 0 || empty.Parent != roots[0] || empty.OwnerUID != 0 {
		t.Errorf("empty namespace: pids %v, parent %v, owner %d", empty.PIDs, empty.Parent, empty.OwnerUID)
	}
	if child.OwnerUID != 200000 {
		t.Errorf("child of empty namespace: owner %d, want 200000", child.OwnerUID)
	}
}
