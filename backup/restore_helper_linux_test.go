//go:build linux

package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
)

// The helper of RestoreRootless is this test binary re-executed: serve
// it before TestMain runs the tests (the package's init functions, which
// register the helper operations, have run by now).
func init() {
	// Before HelperMain, which serves a helper and exits: a shift helper
	// killed by the crash hook needs it installed (the package's other
	// init functions never run in a helper).
	installShiftCrashHook()
	userns.HelperMain()
}

// rootlessEnv names the directory of TestRestoreRootless for its child,
// run as the unprivileged test user.
const rootlessEnv = "NSCAP_BACKUP_TEST_ROOTLESS"

func TestHelperMapFor(t *testing.T) {
	testutil.RequireRoot(t) // as root: no subordinate ids needed
	tests := []struct {
		target, helper, inside string
	}{
		// The caller (root, id 0) at 0, the target's host ids after it.
		{"0:100000:65536", "0:0:1,1:100000:65536", "0:1:65536"},
		{"0:100000:1000,1000:200000:5", "0:0:1,1:100000:1000,1001:200000:5", "0:1:1000,1000:1001:5"},
		// A target that maps the caller's own id: it stays at 0.
		{"0:0:1,1:100000:65536", "0:0:1,1:100000:65536", "0:0:1,1:1:65536"},
		{"0:0:10", "0:0:1,1:1:9", "0:0:1,1:1:9"},
	}
	for _, tc := range tests {
		helper, inside, err := helperMapFor(mustMap(t, tc.target), 0, "uid")
		if err != nil {
			t.Errorf("helperMapFor(%s) = %v", tc.target, err)
			continue
		}
		if helper.String() != tc.helper || inside.String() != tc.inside {
			t.Errorf("helperMapFor(%s) = %s, %s, want %s, %s", tc.target, helper, inside, tc.helper, tc.inside)
		}
	}
}

// TestHelperEvents decodes the events of a helper as the parent's
// handler gets them from userns: error events rebuild their error, and an
// error of the caller's handler is remembered as the one that stopped the
// helper.
func TestHelperEvents(t *testing.T) {
	t.Parallel()
	var got []string
	h := &eventHandler{handle: func(ev helperEvent) error {
		got = append(got, ev.Type+" "+ev.Path+" "+ev.err().Error())
		if ev.Path == "stop" {
			return errors.New("stop here")
		}
		return nil
	}}
	fn := h.fn()
	for _, js := range []string{
		`{"t":"error","path":"d/x","op":"mknod","msg":"operation not permitted","errno":1}`,
		`{"t":"error","path":"stop","msg":"m"}`,
	} {
		_ = fn(json.RawMessage(js))
	}
	want := []string{"error d/x mknod d/x: operation not permitted", "error stop m"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if h.aborted == nil || h.aborted.Error() != "stop here" {
		t.Errorf("an error of the handler was not remembered: %v", h.aborted)
	}
	if err := fn(json.RawMessage(`{not json`)); err == nil {
		t.Errorf("a malformed event was accepted")
	}
	var pe *fs.PathError
	ev := helperEvent{Type: "error", Path: "p", Op: "mknod", Msg: "operation not permitted", Errno: int(syscall.EPERM)}
	if err := ev.err(); !errors.Is(err, syscall.EPERM) || !errors.As(err, &pe) || pe.Path != "p" {
		t.Errorf("event error %v does not match EPERM as a *fs.PathError", err)
	}
}

func TestHelperPathRewriter(t *testing.T) {
	t.Parallel()
	rw := pathRewriter{from: "/proc/self/fd/40", to: "dest/"}
	for in, want := range map[string]string{
		"/proc/self/fd/40":       "dest/",
		"/proc/self/fd/40/a/b":   "dest/a/b",
		"/proc/self/fd/400/a":    "/proc/self/fd/400/a",
		"elsewhere/proc/self/fd": "elsewhere/proc/self/fd",
	} {
		if got := rw.path(in); got != want {
			t.Errorf("path(%q) = %q, want %q", in, got, want)
		}
	}
	err := rw.err(&fs.PathError{Op: "open", Path: "/proc/self/fd/40/x", Err: syscall.EACCES})
	if err.Error() != "open dest/x: permission denied" || !errors.Is(err, syscall.EACCES) {
		t.Errorf("err = %v, want the path rewritten and EACCES kept", err)
	}
}

func TestRestoreRootlessNeedsMap(t *testing.T) {
	t.Parallel()
	_, err := RestoreRootless(context.Background(), bytes.NewReader(nil), t.TempDir(), RestoreOptions{}, RootlessOptions{})
	if !errors.Is(err, ErrHelperNoMap) {
		t.Errorf("RestoreRootless without maps = %v, want ErrHelperNoMap", err)
	}
}

// rlTree describes every entry under dir, skipping the names in skip:
// type and mode, owner, link count, mtime, symlink target, content hash, and every
// xattr (security.capability raw, as the host reads it).
func rlTree(tb testing.TB, dir string, skip ...string) map[string]string {
	tb.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		for _, s := range skip {
			if rel == s {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		desc := fmt.Sprintf("%o %d:%d n%d", st.Mode, st.Uid, st.Gid, st.Nlink)
		if rel != "." {
			// (Restore removes its marker from dest after setting the
			// times of ".", which changes its mtime.)
			desc += fmt.Sprintf(" %d", st.Mtim.Nano())
		}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			t, _ := os.Readlink(p)
			desc += " -> " + t
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %x", sha256.Sum256(b))
		}
		buf := make([]byte, 4096)
		n, err := unix.Llistxattr(p, buf)
		if err != nil {
			return err
		}
		names := strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")
		sort.Strings(names)
		for _, name := range names {
			if name == "" {
				continue
			}
			v := make([]byte, 256)
			m, err := unix.Lgetxattr(p, name, v)
			if err != nil {
				return err
			}
			desc += fmt.Sprintf(" %s=%x", name, v[:m])
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// rlRecorder records the events of a restore.
type rlRecorder struct {
	NopReporter
	mu    sync.Mutex
	items map[string]Action
	errs  []string // "PATH eperm=BOOL"
	msgs  []string
	warns []string
}

func (r *rlRecorder) CompleteItem(p string, a Action, _ ItemStats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.items == nil {
		r.items = map[string]Action{}
	}
	r.items[p] = a
}

func (r *rlRecorder) Warn(p string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warns = append(r.warns, p+": "+err.Error())
}

func (r *rlRecorder) Error(p string, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf("%s eperm=%v", p, errors.Is(err, syscall.EPERM)))
	r.msgs = append(r.msgs, err.Error())
	return nil
}

// rlArchive makes the archive of the mapped fixture (container at 100000)
// and returns its path.
func rlArchive(t *testing.T) string {
	t.Helper()
	root := fixture(t, 100000)
	archive := filepath.Join(filepath.Dir(root), "ct.tar")
	if _, err := WriteFile(context.Background(), archive, root, Options{UIDMap: mustMap(t, "0:100000:65536")}); err != nil {
		t.Fatal(err)
	}
	return archive
}

// TestRestoreRootlessHelperAsRoot runs the helper as root (maps written
// directly) and compares its tree with Restore's.
func TestRestoreRootlessHelperAsRoot(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	archive := rlArchive(t)
	m := mustMap(t, "0:300000:65536")
	dest1, dest2 := testutil.TempDir(t), testutil.TempDir(t)

	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var direct []string
	if _, err := Restore(context.Background(), f, dest1, RestoreOptions{UIDMap: m, Reporter: funcs{err: collect(&direct)}}); err != nil || len(direct) > 0 {
		t.Fatalf("Restore = %v, %q", err, direct)
	}

	// Not an *os.File: the archive goes through a pipe.
	data, err := os.ReadFile(archive)
	if err != nil {
		t.Fatal(err)
	}
	rec := &rlRecorder{}
	var stderr bytes.Buffer
	sum, err := RestoreRootless(context.Background(), bytes.NewReader(data), dest2, RestoreOptions{UIDMap: m, Reporter: rec},
		RootlessOptions{Stderr: &stderr})
	if err != nil {
		t.Fatalf("RestoreRootless = %v (helper stderr %q)", err, stderr.String())
	}
	// A user namespace cannot make device nodes.
	wantErrs := []string{dest2 + "/dev/loop0 eperm=true", dest2 + "/dev/null eperm=true"}
	sort.Strings(rec.errs)
	if diff := cmp.Diff(wantErrs, rec.errs); diff != "" {
		t.Errorf("per-entry errors (-want +got):\n%s\nmessages: %q", diff, rec.msgs)
	}
	if sum.Failures != 2 || sum.Caps == 0 {
		t.Errorf("summary %+v", sum)
	}
	if rec.items["dest2"] != "" || rec.items[dest2+"/bin/ping"] != ActionRestored {
		t.Errorf("items %v: want bin/ping restored, under dest as given", rec.items)
	}
	if diff := cmp.Diff(rlTree(t, dest1, "dev/null", "dev/loop0"), rlTree(t, dest2)); diff != "" {
		t.Errorf("tree restored through the helper differs from Restore's (-Restore +helper):\n%s", diff)
	}
	// Verified through a helper too: only the device nodes are missing.
	var diffs []string
	dd, err := VerifyRootless(context.Background(), f2(t, archive), dest2, VerifyOptions{UIDMap: m}, RootlessOptions{})
	for _, d := range dd {
		diffs = append(diffs, d.String())
	}
	want := []string{dest2 + "/dev/loop0: missing", dest2 + "/dev/null: missing"}
	sort.Strings(diffs)
	if err != nil || !cmp.Equal(want, diffs) {
		t.Errorf("VerifyRootless = %q, %v, want %q", diffs, err, want)
	}
}

func f2(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// rootlessChildResult is what TestRestoreRootlessChild reports.
type rootlessChildResult struct {
	Err        string   `json:"err"`
	ItemErrors []string `json:"item_errors"`
	ItemMsgs   []string `json:"item_msgs"`
	Caps       int64    `json:"caps"`
	Diffs      []string `json:"diffs"`
	VerifyErr  string   `json:"verify_err"`
	Outside    string   `json:"outside"`
	OutsideIs  bool     `json:"outside_is"`
	Never      []string `json:"never"`
	NeverErr   string   `json:"never_err"`
}

// TestRestoreRootlessChild runs as the unprivileged test user, started by
// TestRestoreRootless; on its own it has nothing to do.
func TestRestoreRootlessChild(t *testing.T) {
	spec := testutil.ChildEnv(t, rootlessEnv, "TestRestoreRootless")
	dir, base, _ := strings.Cut(spec, " ")
	m := mustMap(t, "0:"+base+":65536")
	var res rootlessChildResult
	f := f2(t, filepath.Join(dir, "ct.tar"))
	rec := &rlRecorder{}
	sum, err := RestoreRootless(context.Background(), f, filepath.Join(dir, "dest2"), RestoreOptions{UIDMap: m, Reporter: rec}, RootlessOptions{})
	if err != nil {
		res.Err = err.Error()
	}
	res.ItemErrors, res.ItemMsgs, res.Caps = rec.errs, rec.msgs, sum.Caps
	diffs, err := VerifyRootless(context.Background(), f2(t, filepath.Join(dir, "ct.tar")), filepath.Join(dir, "dest2"), VerifyOptions{UIDMap: m}, RootlessOptions{})
	if err != nil {
		res.VerifyErr = err.Error()
	}
	for _, d := range diffs {
		res.Diffs = append(res.Diffs, strings.TrimPrefix(d.String(), dir+"/"))
	}
	// A map beyond the user's range: refused before anything is written.
	_, err = RestoreRootless(context.Background(), f2(t, filepath.Join(dir, "ct.tar")), filepath.Join(dir, "dest3"),
		RestoreOptions{UIDMap: mustMap(t, "0:"+base+"0:65536")}, RootlessOptions{})
	if err != nil {
		res.Outside, res.OutsideIs = err.Error(), errors.Is(err, ErrHelperMap) && errors.Is(err, userns.ErrUnmapped)
	}
	// Without the helper: every owner change is refused.
	never := &rlRecorder{}
	_, err = Restore(context.Background(), f2(t, filepath.Join(dir, "ct.tar")), filepath.Join(dir, "dest4"), RestoreOptions{UIDMap: m, Reporter: never})
	if err != nil {
		res.NeverErr = err.Error()
	}
	res.Never = never.errs
	testutil.PrintResult(t, res)
}

// TestRestoreRootless restores the archive of a rootfs as an unprivileged
// user owning the subordinate range of the target map, and compares the
// tree with root's restore.
func TestRestoreRootless(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "getcap", "getfacl")
	const base = 460000
	archive := rlArchive(t)
	dir := filepath.Dir(archive)
	testutil.Traversable(t, dir)
	u := testutil.User(t, testutil.UserOptions{Prefix: "bkr", SubStart: base, SubCount: 65536})
	// The archive is the user's, readable by it only.
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chown(archive, u.UID, u.GID))
	must(os.Chmod(archive, 0o600))
	dest1, dest2, dest3 := filepath.Join(dir, "dest1"), filepath.Join(dir, "dest2"), filepath.Join(dir, "dest3")
	for _, d := range []string{dest1, dest2, dest3, filepath.Join(dir, "dest4")} {
		must(os.Mkdir(d, 0o755))
		must(os.Chown(d, u.UID, u.GID))
	}
	m := mustMap(t, fmt.Sprintf("0:%d:65536", base))
	var direct []string
	rootSum, err := Restore(context.Background(), f2(t, archive), dest1, RestoreOptions{UIDMap: m, Reporter: funcs{err: collect(&direct)}})
	if err != nil || len(direct) > 0 {
		t.Fatalf("Restore as root = %v, %q", err, direct)
	}

	out := u.RunTest(t, "TestRestoreRootlessChild", fmt.Sprintf("%s=%s %d", rootlessEnv, dir, base))
	var res rootlessChildResult
	js := testutil.ReadResult(t, out, &res)
	t.Logf("result of the unprivileged child: %s", js)
	if res.Err != "" || res.Caps != rootSum.Caps {
		t.Errorf("RestoreRootless as %s = %q, %d caps; want success, %d caps", u.Name, res.Err, res.Caps, rootSum.Caps)
	}
	sort.Strings(res.ItemErrors)
	if want := []string{dest2 + "/dev/loop0 eperm=true", dest2 + "/dev/null eperm=true"}; !cmp.Equal(want, res.ItemErrors) {
		t.Errorf("per-entry errors %q, want %q (%q)", res.ItemErrors, want, res.ItemMsgs)
	}
	wantDiffs := []string{"dest2/dev/loop0: missing", "dest2/dev/null: missing"}
	sort.Strings(res.Diffs)
	if res.VerifyErr != "" || !cmp.Equal(wantDiffs, res.Diffs) {
		t.Errorf("VerifyRootless as the user = %q, %q, want %q", res.Diffs, res.VerifyErr, wantDiffs)
	}
	if !res.OutsideIs || !strings.Contains(res.Outside, "/etc/subuid") {
		t.Errorf("map outside the user's range: %q, want ErrHelperMap naming /etc/subuid", res.Outside)
	}
	if len(res.Never) == 0 || !strings.Contains(res.Never[0], "eperm=true") {
		t.Errorf("Restore without the helper as the user: errors %q, want EPERM", res.Never)
	}
	if diff := cmp.Diff(rlTree(t, dest1, "dev/null", "dev/loop0"), rlTree(t, dest2)); diff != "" {
		t.Errorf("tree of the unprivileged restore differs from root's (-root +user):\n%s", diff)
	}
	wantCaps := []string{
		"bin/nested cap_net_raw=ep [rootid=461000]",
		"bin/ping cap_net_raw=ep [rootid=460000]",
		"bin/ping6 cap_net_raw=ep [rootid=460000]",
	}
	for _, d := range []string{dest1, dest2} {
		if diff := cmp.Diff(wantCaps, getcapN(t, d)); diff != "" {
			t.Errorf("getcap -r -n %s (-want +got):\n%s", d, diff)
		}
		acl, err := exec.Command("getfacl", "-n", "-c", filepath.Join(d, "etc/acl")).CombinedOutput()
		if err != nil || !strings.Contains(string(acl), "user:461000:") || !strings.Contains(string(acl), "group:461001:") {
			t.Errorf("getfacl -n %s/etc/acl: %v\n%s", d, err, acl)
		}
	}
	// Verified as root too.
	diffs, err := Verify(context.Background(), f2(t, archive), dest2, VerifyOptions{UIDMap: m})
	var got []string
	for _, d := range diffs {
		got = append(got, strings.TrimPrefix(d.String(), dir+"/"))
	}
	sort.Strings(got)
	if err != nil || !cmp.Equal(wantDiffs, got) {
		t.Errorf("Verify as root = %q, %v, want %q", got, err, wantDiffs)
	}
	if ents, err := os.ReadDir(dest3); err != nil || len(ents) > 0 {
		t.Errorf("the refused restore wrote into dest3: %v, %v", ents, err)
	}
}

// FuzzHelperEvents feeds the parent's decoder of the helper's events
// arbitrary bytes: it never panics, and rebuilds an error for every error
// event.
func FuzzHelperEvents(f *testing.F) {
	f.Add([]byte(`{"t":"error","path":"d/x","op":"mknod","msg":"operation not permitted","errno":1}`))
	f.Add([]byte(`{"t":"item","path":"d/x","action":"restored","size":12}`))
	f.Add([]byte(`{"t":"diff","diff":{"path":"p","kind":"caps","want":"a","got":"b"}}`))
	f.Add([]byte(`{not json`))
	f.Add([]byte(`{"t":"error","errno":-5}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h := &eventHandler{handle: func(ev helperEvent) error {
			if ev.Type == "error" && ev.err() == nil {
				t.Errorf("error event %+v gives a nil error", ev)
			}
			return nil
		}}
		_ = h.fn()(json.RawMessage(b))
		if h.aborted != nil {
			t.Errorf("the handler did not fail, but the helper would be stopped: %v", h.aborted)
		}
	})
}
