package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
)

func TestNewUsernsCmd(t *testing.T) {
	t.Parallel()
	me := os.Getpid()
	tests := []struct {
		argv    string
		want    []int
		wantErr string
	}{
		{argv: "", want: []int{me}},
		{argv: "self", want: []int{me}},
		{argv: "42 self 7", want: []int{42, me, 7}},
		{argv: "0", wantErr: `"0": want a process id or self`},
		{argv: "x", wantErr: `"x": want a process id or self`},
		{argv: "--rootid 3", wantErr: "unknown flag: --rootid"},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			t.Parallel()
			got, err := parseCmd(t, newUsernsCmd, tc.argv)
			if errString(err) != tc.wantErr {
				t.Fatalf("userns %s: error %q, want %q", tc.argv, errString(err), tc.wantErr)
			}
			if err != nil {
				if exitCodeFor(err) != ExitUsage {
					t.Errorf("userns %s: %v is not a usage error", tc.argv, err)
				}
				return
			}
			if diff := cmp.Diff(tc.want, got.PIDs); diff != "" {
				t.Errorf("userns %s: pids (-want +got):\n%s", tc.argv, diff)
			}
		})
	}
}

// nscapWith runs nscap in-process with a factory that mod adjusts.
func nscapWith(tb testing.TB, mod func(*Factory), args ...string) result {
	tb.Helper()
	ios, _, out, errOut := Test()
	f := NewFactory(ios)
	mod(f)
	code := run(context.Background(), NewRootCmd(f), args, ios)
	return result{Code: code, Stdout: out.String(), Stderr: errOut.String()}
}

func mustMap(tb testing.TB, s string) userns.Map {
	tb.Helper()
	m, err := userns.ParseMap(s)
	if err != nil {
		tb.Fatal(err)
	}
	return m
}

// fakeInspect describes made-up namespaces: pid 1 the caller's, 4242 two
// levels below, 77 outside the caller's scope; others are gone.
func fakeInspect(tb testing.TB) func(int) (*userns.Namespace, error) {
	initNS := userns.NSRef{Inode: 4026531837, Dev: 4, ID: 1}
	ns1 := userns.NSRef{Inode: 4026532601, Dev: 4, ID: 4097}
	return func(pid int) (*userns.Namespace, error) {
		switch pid {
		case 1:
			return &userns.Namespace{
				PID: 1, NSRef: initNS, Self: true, Descendant: true,
				UIDMap: mustMap(tb, "0:0:4294967295"), GIDMap: mustMap(tb, "0:0:4294967295"), RootVisible: true,
			}, nil
		case 4242:
			return &userns.Namespace{
				PID: 4242, NSRef: userns.NSRef{Inode: 4026532602, Dev: 4, ID: 4098, OwnerUID: 100000},
				Descendant: true, Depth: 2, Parents: []userns.NSRef{ns1, initNS},
				UIDMap: mustMap(tb, "0:101000:1000"), GIDMap: mustMap(tb, "0:101000:1000"), RootID: 101000, RootVisible: true,
			}, nil
		case 77:
			return &userns.Namespace{PID: 77, NSRef: userns.NSRef{Inode: 4026532700, Dev: 4, OwnerUID: 65534}}, nil
		}
		return nil, &os.PathError{Op: "open", Path: "/proc/" + strconv.Itoa(pid) + "/ns/user", Err: syscall.ENOENT}
	}
}

func fakeTree(tb testing.TB) func() ([]*userns.Node, error) {
	return func() ([]*userns.Node, error) {
		root := &userns.Node{
			NSRef: userns.NSRef{Inode: 4026531837, Dev: 4, ID: 1}, PIDs: []int{1, 2, 300}, Self: true,
			UIDMap: mustMap(tb, "0:0:4294967295"), GIDMap: mustMap(tb, "0:0:4294967295"), RootVisible: true,
		}
		ns1 := &userns.Node{
			NSRef: userns.NSRef{Inode: 4026532601, Dev: 4, ID: 4097}, PIDs: []int{400}, Parent: root,
			UIDMap: mustMap(tb, "0:100000:65536"), GIDMap: mustMap(tb, "0:100000:65536"), RootID: 100000, RootVisible: true,
		}
		ns2 := &userns.Node{
			NSRef: userns.NSRef{Inode: 4026532602, Dev: 4, ID: 4098, OwnerUID: 100000}, PIDs: []int{401, 402}, Parent: ns1,
			UIDMap: mustMap(tb, "0:101000:1000"), GIDMap: mustMap(tb, "0:101000:1000"), RootID: 101000, RootVisible: true,
		}
		ghost := &userns.Node{
			NSRef: userns.NSRef{Inode: 4026532650, Dev: 4, ID: 4100}, Parent: root,
			MapErr: errors.New("join user namespace: exec: \"nsenter\": executable file not found in $PATH"),
		}
		ns3 := &userns.Node{
			NSRef: userns.NSRef{Inode: 4026532651, Dev: 4, ID: 4101}, PIDs: []int{500}, Parent: ghost,
			UIDMap: mustMap(tb, "0:200007:100"), GIDMap: mustMap(tb, "0:200007:100"), RootID: 200007, RootVisible: true,
		}
		outside := &userns.Node{NSRef: userns.NSRef{Inode: 4026532800, Dev: 4, OwnerUID: 65534}, PIDs: []int{600}}
		root.Children = []*userns.Node{ns1, ghost}
		ns1.Children = []*userns.Node{ns2}
		ghost.Children = []*userns.Node{ns3}
		return []*userns.Node{root, outside}, nil
	}
}

func TestRunUsernsGolden(t *testing.T) {
	t.Parallel()
	mod := func(f *Factory) { f.Inspect = fakeInspect(t); f.Namespaces = fakeTree(t) }
	for _, tc := range []struct {
		golden string
		args   []string
		code   ExitCode
	}{
		{"userns", []string{"userns", "4242", "1", "77", "99"}, ExitError},
		{"userns-json", []string{"userns", "--json", "4242", "1", "77", "99"}, ExitError},
		{"userns-tree", []string{"userns", "tree"}, ExitOK},
		{"userns-tree-json", []string{"userns", "tree", "--json"}, ExitOK},
	} {
		r := nscapWith(t, mod, tc.args...)
		if r.Code != tc.code {
			t.Errorf("nscap %q: exit %d, want %d", tc.args, r.Code, tc.code)
		}
		golden(t, tc.golden, "$ nscap "+strings.Join(tc.args, " ")+"\n"+r.Stdout+"-- stderr --\n"+r.Stderr)
	}
}

var rootidRE = regexp.MustCompile(`\[rootid=(\d+)\]`)

// getcapRootID returns the rootid getcap -n shows for path ("" for a
// revision-2 value or none).
func getcapRootID(tb testing.TB, path string) string {
	tb.Helper()
	out := runTool(tb, "getcap", "-n", path)
	if m := rootidRE.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// kernelRootID has setcap, run as root inside pid's user namespace, write
// a capability (for uid nsUID inside it) on a fresh file owned by that
// namespace's root, and returns the rootid the kernel stored, as getcap -n
// shows it on the host.
func kernelRootID(tb testing.TB, dir string, pid int, nsUID int, owner uint32) string {
	tb.Helper()
	f := filepath.Join(dir, fmt.Sprintf("kernel-%d-%d", pid, nsUID))
	writeFile(tb, f)
	if err := os.Chown(f, int(owner), int(owner)); err != nil {
		tb.Fatal(err)
	}
	args := []string{"-U", "-t", strconv.Itoa(pid), "setcap"}
	if nsUID != 0 {
		args = append(args, "-n", strconv.Itoa(nsUID))
	}
	runTool(tb, "nsenter", append(args, "cap_net_raw+ep", f)...)
	return getcapRootID(tb, f)
}

func TestUsernsNested(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "nsenter", "setcap", "getcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir)
	pids := testutil.Nest(t, []string{"0:100000:65536", "0:1000:1000", "0:5:10"}, 0)
	wantRoot := []string{"100000", "101000", "101005"}

	var tree []treeRecord
	r := nscap(t, "", "userns", "tree", "--json")
	if r.Code != ExitOK {
		t.Fatalf("userns tree: %+v", r)
	}
	for l := range strings.SplitSeq(strings.TrimSpace(r.Stdout), "\n") {
		var rec treeRecord
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatalf("userns tree --json line %q: %v", l, err)
		}
		if rec.Type != recNamespace {
			continue // the summary
		}
		tree = append(tree, rec)
	}
	treeLines := nscap(t, "", "userns", "tree").Stdout

	for i, pid := range pids {
		level := fmt.Sprintf("level %d (pid %d)", i+1, pid)
		r := nscap(t, "", "userns", "--json", strconv.Itoa(pid))
		var rec usernsRecord
		if err := json.Unmarshal([]byte(firstLine(r.Stdout)), &rec); err != nil || r.Code != ExitOK {
			t.Fatalf("%s: userns --json: %+v (%v)", level, r, err)
		}
		if rec.RootID == nil || rec.Depth != i+1 || len(rec.Chain) != i+1 || !rec.Descendant {
			t.Fatalf("%s: userns --json = %s", level, r.Stdout)
		}
		root := strconv.FormatUint(uint64(*rec.RootID), 10)
		if root != wantRoot[i] {
			t.Errorf("%s: rootid %s, want %s", level, root, wantRoot[i])
		}
		// The kernel's own answer: a v2 setcap inside, read on the host.
		if k := kernelRootID(t, dir, pid, 0, *rec.RootID); k != root {
			t.Errorf("%s: kernel stored rootid %s, nscap userns says %s", level, k, root)
		}
		if h := nscap(t, "", "userns", strconv.Itoa(pid)).Stdout; !strings.Contains(h, "\n  root       "+root+"\n") {
			t.Errorf("%s: userns text lacks root %s:\n%s", level, root, h)
		}
		// set --pid writes exactly that rootid, on a file of that
		// namespace (set refuses one whose owner it does not map).
		f := writeFile(t, filepath.Join(dir, fmt.Sprintf("set-%d", i+1)))
		if err := os.Chown(f, int(*rec.RootID), int(*rec.RootID)); err != nil {
			t.Fatal(err)
		}
		if r := nscap(t, "", "set", "--pid", strconv.Itoa(pid), "cap_net_raw+ep", f); r.Code != ExitOK {
			t.Errorf("%s: set --pid: %+v", level, r)
		}
		if got := getcapRootID(t, f); got != root {
			t.Errorf("%s: set --pid wrote rootid %q, want %s", level, got, root)
		}
		// The tree shows the namespace with its pid and root.
		found := false
		for _, n := range tree {
			for _, p := range n.PIDs {
				if p == pid {
					found = true
					if n.RootID == nil || *n.RootID != *rec.RootID || n.Inode != rec.Inode || n.Depth != i+1 {
						t.Errorf("%s: tree record %+v, want root %s inode %d depth %d", level, n, root, rec.Inode, i+1)
					}
				}
			}
		}
		if !found {
			t.Errorf("%s: not in userns tree --json", level)
		}
		if !strings.Contains(treeLines, " root "+root+" ") {
			t.Errorf("%s: userns tree text lacks root %s:\n%s", level, root, treeLines)
		}
	}

	// A uid inside: set --pid --ns-uid 5 on level 1 = setcap -n 5 in it.
	f := writeFile(t, filepath.Join(dir, "ns-uid"))
	if err := os.Chown(f, 100005, 100005); err != nil {
		t.Fatal(err)
	}
	if r := nscap(t, "", "set", "--pid", strconv.Itoa(pids[0]), "--ns-uid", "5", "cap_net_raw+ep", f); r.Code != ExitOK {
		t.Fatalf("set --pid --ns-uid: %+v", r)
	}
	if got, k := getcapRootID(t, f), kernelRootID(t, dir, pids[0], 5, 100000); got != k || got != "100005" {
		t.Errorf("set --pid --ns-uid 5 wrote rootid %s, the kernel %s, want 100005", got, k)
	}

	// remove --pid: only caps of that namespace (or nested in it).
	nested := writeFile(t, filepath.Join(dir, "rm-nested"))
	host := writeFile(t, filepath.Join(dir, "rm-host"))
	if err := os.Chown(nested, 101000, 101000); err != nil {
		t.Fatal(err)
	}
	runTool(t, "setcap", "-n", "101005", "cap_chown+ep", nested)
	runTool(t, "setcap", "cap_chown+ep", host)
	r = nscap(t, "", "remove", "--pid", strconv.Itoa(pids[0]), nested, host)
	wantErr := "nscap: remove " + host + ": outside the user namespace of pid " + strconv.Itoa(pids[0]) +
		": the file's owner uid 0 is not mapped by its uid map 0:100000:65536; nothing removed\n"
	if r.Code != ExitError || r.Stderr != wantErr {
		t.Errorf("remove --pid = %+v, want stderr %q", r, wantErr)
	}
	if rawHex(t, nested) != "" || rawHex(t, host) == "" {
		t.Errorf("remove --pid: nested caps %q (want none), host caps %q (want kept)", rawHex(t, nested), rawHex(t, host))
	}

	// A pid that is gone: a clear error, nothing written.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	gone := strconv.Itoa(dead.Process.Pid)
	g := writeFile(t, filepath.Join(dir, "gone"))
	r = nscap(t, "", "set", "--pid", gone, "cap_net_raw+ep", g)
	if r.Code != ExitError || r.Stderr != "nscap: set: pid "+gone+": no such process\n" || rawHex(t, g) != "" {
		t.Errorf("set --pid of a dead process = %+v", r)
	}
	if r := nscap(t, "", "userns", gone); r.Code != ExitError || r.Stderr != "nscap: userns "+gone+": pid "+gone+": no such process\n" {
		t.Errorf("userns of a dead process = %+v", r)
	}
}

// TestRootlessCLI runs the nscap binary as an unprivileged user owning
// subordinate ids: set and remove go through the helper namespace.
func TestRootlessCLI(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "go", "getcap", "setcap", "pgrep")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir)
	bin := filepath.Join(dir, "nscap")
	if out, err := exec.Command("go", "build", "-o", bin, "../../cmd/nscap").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	u := testutil.User(t, testutil.UserOptions{Prefix: "cli", SubStart: 400000, SubCount: 65536})
	name, uid := u.Name, u.UID
	mk := func(n string, owner int) string {
		p := writeFile(t, filepath.Join(dir, n))
		if err := os.Chown(p, owner, owner); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ct, nested, hostFile, other, never, noTool := mk("ct", 400000), mk("nested", 401000), mk("host", 0), mk("other", 400000), mk("never", 400000), mk("notool", 400000)
	rm, rmHost := mk("rm", 400000), mk("rm-host", 0)
	runTool(t, "setcap", "-n", "400000", "cap_chown+ep", rm)
	runTool(t, "setcap", "-n", "400000", "cap_chown+ep", rmHost)

	as := func(env []string, args ...string) result {
		t.Helper()
		cmd := u.Command(bin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), env...)
		var out, errOut strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return result{Code: ExitCode(code), Stdout: out.String(), Stderr: strings.ReplaceAll(errOut.String(), dir+"/", "")}
	}
	for _, tc := range []struct {
		name    string
		env     []string
		args    []string
		code    ExitCode
		stderr  string // substring
		file    string
		wantCap string // getcap -n rootid afterwards; "-" for no caps
	}{
		{name: "container root", args: []string{"set", "--uidmap", "0:400000:65536", "cap_net_raw+ep", "ct"}, file: ct, wantCap: "400000"},
		{name: "nested uid", args: []string{"set", "--uidmap", "0:400000:65536", "--ns-uid", "1000", "cap_net_raw+ep", "nested"}, file: nested, wantCap: "401000"},
		{name: "remove", args: []string{"remove", "rm"}, file: rm, wantCap: "-"},
		{
			// --rootid: no owner check by set itself, so the helper's shows.
			name: "file outside the ranges", args: []string{"set", "--rootid", "400000", "cap_net_raw+ep", "host"}, code: ExitError,
			stderr: "nscap: set host: the file's owner uid 0 is outside the uids the caller owns, " + strconv.Itoa(uid) + ", 400000-465535 (its own uid and its subordinate ranges, all that its helper user namespace maps): nothing written", file: hostFile, wantCap: "-",
		},
		{
			name: "range not owned", args: []string{"set", "--rootid", "500000", "cap_net_raw+ep", "other"}, code: ExitError,
			stderr: "nscap: set other: rootid 500000 is outside the uids the caller owns, " + strconv.Itoa(uid) + ", 400000-465535 (", file: other, wantCap: "-",
		},
		{
			// The whole map is checked against the ranges, not only the
			// rootid, before anything is done; the message names the
			// ranges the caller owns.
			name: "map beyond the ranges", args: []string{"set", "--uidmap", "0:400000:70000", "cap_net_raw+ep", "other"}, code: ExitUsage,
			stderr: "nscap: set: the user namespace of --uidmap 0:400000:70000 maps host uids 465536-469999 that are not yours: you own uid " + strconv.Itoa(uid) + " and 400000-465535 (/etc/subuid, user " + name + "), all that the helper user namespace of an unprivileged user can map\n", file: other, wantCap: "-",
		},
		{
			name: "gid map beyond the ranges", args: []string{"set", "--uidmap", "0:400000:65536", "--gidmap", "0:300000:10", "cap_net_raw+ep", "other"}, code: ExitUsage,
			stderr: "maps host gids 300000-300009 that are not yours: you own gid " + strconv.Itoa(u.GID) + " and 400000-465535 (/etc/subgid, user " + name + ")", file: other, wantCap: "-",
		},
		{
			name: "remove: map beyond the ranges", args: []string{"remove", "--uidmap", "0:300000:65536", "rm"}, code: ExitUsage,
			stderr: "nscap: remove: the user namespace of --uidmap 0:300000:65536 maps host uids 300000-365535 that are not yours", file: rm, wantCap: "-",
		},
		{
			name: "helper never: the map is not checked", args: []string{"set", "--helper", "never", "--uidmap", "0:400000:70000", "cap_net_raw+ep", "other"}, code: ExitError,
			stderr: "needs CAP_SETFCAP", file: other, wantCap: "-",
		},
		{
			name: "host-wide caps", args: []string{"set", "cap_net_raw+ep", "other"}, code: ExitError,
			stderr: "nscap: set other: rootid 0 (revision 2: capabilities honoured by the host) is outside", file: other, wantCap: "-",
		},
		{
			name: "remove outside the ranges", args: []string{"remove", "rm-host"}, code: ExitError,
			stderr: "nscap: remove rm-host: the file's owner uid 0 is outside", file: rmHost, wantCap: "400000",
		},
		{
			name: "helper never", args: []string{"set", "--helper", "never", "--uidmap", "0:400000:65536", "cap_net_raw+ep", "never"}, code: ExitError,
			stderr: "nscap: set never: writing security.capability needs CAP_SETFCAP", file: never, wantCap: "-",
		},
		{
			name: "newuidmap missing", env: []string{"PATH=/nonexistent"}, args: []string{"set", "--uidmap", "0:400000:65536", "cap_net_raw+ep", "notool"}, code: ExitError,
			stderr: `no helper user namespace could be started (operation not permitted): start helper: exec: "newuidmap": executable file not found in $PATH`, file: noTool, wantCap: "-",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := as(tc.env, tc.args...)
			if r.Code != tc.code || !strings.Contains(r.Stderr, tc.stderr) || (tc.stderr == "" && r.Stderr != "") {
				t.Errorf("as %s: nscap %q = %+v, want exit %d and stderr containing %q", name, tc.args, r, tc.code, tc.stderr)
			}
			got := getcapRootID(t, tc.file)
			if got == "" {
				if runTool(t, "getcap", tc.file) == "" {
					got = "-"
				}
			}
			if got != tc.wantCap {
				t.Errorf("after nscap %q: getcap -n rootid %q, want %q", tc.args, got, tc.wantCap)
			}
		})
	}
	// Every helper was reaped with its command.
	if out, _ := exec.Command("pgrep", "-u", strconv.Itoa(uid)).Output(); len(out) > 0 {
		t.Errorf("processes of %s left: %s", name, out)
	}
}
