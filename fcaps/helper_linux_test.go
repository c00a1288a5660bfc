package fcaps

import (
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
	"github.com/nscap/nscap/xattrfmt"
)

func TestParseHelperMode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		want    HelperMode
		wantErr string
	}{
		{in: "auto", want: HelperAuto},
		{in: "always", want: HelperAlways},
		{in: "never", want: HelperNever},
		{in: "", wantErr: `helper mode "": want auto, always or never`},
		{in: "Auto", wantErr: `helper mode "Auto": want auto, always or never`},
	} {
		got, err := ParseHelperMode(tc.in)
		if fmt.Sprint(err) != fmt.Sprint(errOrNil(tc.wantErr)) || got != tc.want {
			t.Errorf("ParseHelperMode(%q) = %v, %v; want %v, %q", tc.in, got, err, tc.want, tc.wantErr)
		}
		if err == nil && got.String() != tc.in {
			t.Errorf("%v.String() = %q, want %q", got, got.String(), tc.in)
		}
	}
}

func errOrNil(s string) error {
	if s == "" {
		return nil
	}
	return errors.New(s)
}

var netRaw = xattrfmt.FileCaps{Revision: xattrfmt.Revision2, Effective: true, Permitted: 1 << 13}

func v3(rootid uint32) xattrfmt.FileCaps {
	c := netRaw
	c.Revision, c.RootID = xattrfmt.Revision3, rootid
	return c
}

// capFile creates a file in dir owned by uid:gid, with caps c when c is
// not nil (written directly, as root).
func capFile(tb testing.TB, dir, name string, uid, gid int, c *xattrfmt.FileCaps) string {
	tb.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/true\n"), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chown(p, uid, gid); err != nil {
		tb.Fatal(err)
	}
	if c != nil {
		if err := Set(p, *c); err != nil {
			tb.Fatal(err)
		}
	}
	return p
}

var rootidRE = regexp.MustCompile(`^(\S+) (\S+)(?: \[rootid=(\d+)\])?$`)

// getcapN returns what getcap -n reports for path: "" for no caps, else
// "TEXT" or "TEXT rootid=N".
func getcapN(tb testing.TB, path string) string {
	tb.Helper()
	out, err := exec.Command("getcap", "-n", path).CombinedOutput()
	if err != nil {
		tb.Fatalf("getcap -n %s: %v: %s", path, err, out)
	}
	line := strings.TrimSpace(string(out))
	if line == "" {
		return ""
	}
	m := rootidRE.FindStringSubmatch(line)
	if m == nil {
		tb.Fatalf("getcap -n %s: unexpected %q", path, line)
	}
	if m[3] != "" {
		return m[2] + " rootid=" + m[3]
	}
	return m[2]
}

func TestSetterRootHelper(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "getcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir)

	// Root has no subordinate ranges: it names the helper's maps.
	m, err := userns.ParseMap("0:100000:65536")
	if err != nil {
		t.Fatal(err)
	}
	s := NewSetter(SetterOptions{Helper: HelperAlways, UIDMap: m, GIDMap: m})
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	a := capFile(t, dir, "a", 100000, 100000, nil)
	b := capFile(t, dir, "b", 101000, 101000, nil)
	host := capFile(t, dir, "host", 0, 0, nil)
	old := v3(100000)
	keep := capFile(t, dir, "keep", 100000, 100000, &old)

	if err := s.Set(a, v3(100000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Set(b, v3(101000)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		path string
		caps xattrfmt.FileCaps
		msg  string
	}{
		{"revision 2", keep, netRaw, "rootid 0 (revision 2: capabilities honoured by the host) is outside the helper user namespace's uid map 0:100000:65536"},
		{"rootid outside", keep, v3(200000), "rootid 200000 is outside the helper user namespace's uid map 0:100000:65536"},
		{"owner outside", host, v3(100000), "the file's owner uid 0 is outside the helper user namespace's uid map 0:100000:65536"},
	} {
		err := s.Set(tc.path, tc.caps)
		if !errors.Is(err, ErrOutsideHelperMap) || !strings.Contains(fmt.Sprint(err), tc.msg) {
			t.Errorf("%s: Set = %v, want ErrOutsideHelperMap with %q", tc.name, err, tc.msg)
		}
	}
	if err := s.Remove(host); !errors.Is(err, ErrOutsideHelperMap) {
		t.Errorf("Remove(host-owned) = %v, want ErrOutsideHelperMap", err)
	}
	got := map[string]string{"a": getcapN(t, a), "b": getcapN(t, b), "host": getcapN(t, host), "keep": getcapN(t, keep)}
	want := map[string]string{"a": "cap_net_raw=ep rootid=100000", "b": "cap_net_raw=ep rootid=101000", "host": "", "keep": "cap_net_raw=ep rootid=100000"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("getcap -n after helper writes (-want +got):\n%s", diff)
	}
	if err := s.Remove(keep); err != nil {
		t.Fatal(err)
	}
	if g := getcapN(t, keep); g != "" {
		t.Errorf("keep still has %q after Remove", g)
	}
	if err := s.Remove(keep); !errors.Is(err, ErrNoCaps) {
		t.Errorf("second Remove = %v, want ErrNoCaps", err)
	}
	if s.starts != 1 {
		t.Errorf("%d helpers started, want 1", s.starts)
	}

	// Auto as root never needs a helper.
	auto := NewSetter(SetterOptions{})
	t.Cleanup(func() {
		if err := auto.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := auto.Set(host, netRaw); err != nil {
		t.Fatal(err)
	}
	if err := auto.Remove(host); err != nil {
		t.Fatal(err)
	}
	if auto.starts != 0 {
		t.Errorf("auto as root started %d helpers", auto.starts)
	}
}

// rootlessEnv marks the test binary re-run as the unprivileged test user
// by TestSetterRootless; its value is the directory of the test files.
const rootlessEnv = "NSCAP_FCAPS_TEST_ROOTLESS"

// rootlessResult is one operation of TestSetterRootlessChild: the error
// text and the sentinels it matches.
type rootlessResult struct {
	Err       string `json:"err,omitempty"`
	Outside   bool   `json:"outside,omitempty"`
	EPERM     bool   `json:"eperm,omitempty"`
	NotFound  bool   `json:"not_found,omitempty"`
	NoCaps    bool   `json:"no_caps,omitempty"`
	StartsOne bool   `json:"starts_one,omitempty"`
}

func resultOf(err error) rootlessResult {
	if err == nil {
		return rootlessResult{}
	}
	return rootlessResult{
		Err:      err.Error(),
		Outside:  errors.Is(err, ErrOutsideHelperMap),
		EPERM:    errors.Is(err, syscall.EPERM),
		NotFound: errors.Is(err, exec.ErrNotFound),
		NoCaps:   errors.Is(err, ErrNoCaps),
	}
}

// TestSetterRootlessChild runs as the unprivileged user, started by
// TestSetterRootless; on its own it has nothing to do.
func TestSetterRootlessChild(t *testing.T) {
	dir := testutil.ChildEnv(t, rootlessEnv, "TestSetterRootless")
	p := func(n string) string { return filepath.Join(dir, n) }
	res := map[string]rootlessResult{}
	never := NewSetter(SetterOptions{Helper: HelperNever})
	res["never"] = resultOf(never.Set(p("ct-root"), v3(400000)))
	if err := never.Close(); err != nil {
		t.Error(err)
	}

	s := NewSetter(SetterOptions{})
	res["ct-root"] = resultOf(s.Set(p("ct-root"), v3(400000)))
	res["nested"] = resultOf(s.Set(p("nested"), v3(401000)))
	res["v2"] = resultOf(s.Set(p("v2"), netRaw))
	res["host-owned"] = resultOf(s.Set(p("host-owned"), v3(400000)))
	res["rootid-outside"] = resultOf(s.Set(p("rootid-outside"), v3(500000)))
	res["remove"] = resultOf(s.Remove(p("remove")))
	res["remove-again"] = resultOf(s.Remove(p("remove")))
	res["remove-host"] = resultOf(s.Remove(p("remove-host")))
	res["starts"] = rootlessResult{StartsOne: s.starts == 1}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Without newuidmap: a clear error, nothing written.
	t.Setenv("PATH", "/nonexistent")
	nt := NewSetter(SetterOptions{})
	res["no-newuidmap"] = resultOf(nt.Set(p("no-tool"), v3(400000)))
	if err := nt.Close(); err != nil {
		t.Error(err)
	}
	testutil.PrintResult(t, res)
}

func TestSetterRootless(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "getcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir)
	u := testutil.User(t, testutil.UserOptions{Prefix: "fcs", SubStart: 400000, SubCount: 65536})
	name, uid := u.Name, u.UID

	ct := v3(400000)
	files := map[string]string{
		"ct-root":        capFile(t, dir, "ct-root", 400000, 400000, nil),
		"nested":         capFile(t, dir, "nested", 401000, 401000, nil),
		"v2":             capFile(t, dir, "v2", 400000, 400000, nil),
		"host-owned":     capFile(t, dir, "host-owned", 0, 0, nil),
		"rootid-outside": capFile(t, dir, "rootid-outside", 400000, 400000, nil),
		"remove":         capFile(t, dir, "remove", 400005, 400005, &ct),
		"remove-host":    capFile(t, dir, "remove-host", 0, 0, &ct),
		"no-tool":        capFile(t, dir, "no-tool", 400000, 400000, nil),
	}

	out := u.RunTest(t, "TestSetterRootlessChild", rootlessEnv+"="+dir)
	var res map[string]rootlessResult
	js := testutil.ReadResult(t, out, &res)
	t.Logf("results of the unprivileged child: %s", js)
	check := func(key string, ok bool, what string) {
		t.Helper()
		if !ok {
			t.Errorf("%s: got %+v, want %s", key, res[key], what)
		}
	}
	check("never", res["never"].EPERM && !res["never"].Outside, "EPERM (no helper)")
	check("ct-root", res["ct-root"].Err == "", "success")
	check("nested", res["nested"].Err == "", "success")
	check("v2", res["v2"].Outside && strings.Contains(res["v2"].Err, "rootid 0 (revision 2"), "ErrOutsideHelperMap for rootid 0")
	check("host-owned", res["host-owned"].Outside && strings.Contains(res["host-owned"].Err, "owner uid 0 is outside"), "ErrOutsideHelperMap for the owner")
	check("rootid-outside", res["rootid-outside"].Outside && strings.Contains(res["rootid-outside"].Err, "rootid 500000 is outside"), "ErrOutsideHelperMap for rootid 500000")
	check("remove", res["remove"].Err == "", "success")
	check("remove-again", res["remove-again"].NoCaps, "ErrNoCaps")
	check("remove-host", res["remove-host"].Outside, "ErrOutsideHelperMap")
	check("starts", res["starts"].StartsOne, "one helper for every call")
	check("no-newuidmap", res["no-newuidmap"].NotFound && res["no-newuidmap"].EPERM && strings.Contains(res["no-newuidmap"].Err, "newuidmap"), "exec.ErrNotFound naming newuidmap")

	got := map[string]string{}
	for k, p := range files {
		got[k] = getcapN(t, p)
	}
	want := map[string]string{
		"ct-root":        "cap_net_raw=ep rootid=400000",
		"nested":         "cap_net_raw=ep rootid=401000",
		"v2":             "",
		"host-owned":     "",
		"rootid-outside": "",
		"remove":         "",
		"remove-host":    "cap_net_raw=ep rootid=400000",
		"no-tool":        "",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("getcap -n on the host after the unprivileged run (-want +got):\n%s", diff)
	}
	// Every helper was reaped: no process of the user is left.
	if out, _ := exec.Command("pgrep", "-u", strconv.Itoa(uid)).Output(); len(out) > 0 {
		t.Errorf("processes of %s left: %s", name, out)
	}
}
