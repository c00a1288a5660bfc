package userns_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// singleChildEnv marks the test binary re-run as uid 65534 (nobody) by
// TestHelperSingleID; its value is the directory of the test files.
const singleChildEnv = "NSCAP_USERNS_TEST_SINGLE_CHILD"

// nobody is the unprivileged id the test runs as: it has no subordinate
// ids in the files the test hands the helper.
const nobody = 65534

// singleResult is what TestHelperSingleIDChild reports: per case, the
// error text (empty on success) and the sentinels it matches, plus what
// the helpers looked like.
type singleResult struct {
	Err      string `json:"err,omitempty"`
	Unmapped bool   `json:"unmapped,omitempty"`
	Outside  bool   `json:"outside,omitempty"`
	NotFound bool   `json:"not_found,omitempty"`
	Map      string `json:"map,omitempty"`
	GIDMap   string `json:"gid_map,omitempty"`
	Inside   string `json:"inside,omitempty"`
	EUID     int    `json:"euid"`
	CapEff   string `json:"cap_eff,omitempty"`
}

func singleOf(err error) singleResult {
	if err == nil {
		return singleResult{}
	}
	return singleResult{
		Err:      err.Error(),
		Unmapped: errors.Is(err, userns.ErrUnmapped),
		Outside:  errors.Is(err, fcaps.ErrOutsideHelperMap),
		NotFound: errors.Is(err, exec.ErrNotFound),
	}
}

func capChown(rootid uint32) xattrfmt.FileCaps {
	return xattrfmt.FileCaps{Revision: xattrfmt.Revision3, Effective: true, Permitted: 1 << 0, RootID: rootid}
}

// TestHelperSingleIDChild runs as nobody, started by TestHelperSingleID;
// on its own it has nothing to do.
func TestHelperSingleIDChild(t *testing.T) {
	dir := os.Getenv(singleChildEnv)
	if dir == "" {
		t.Skip("started by TestHelperSingleID only")
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res := map[string]singleResult{}
	// The single-id maps are written without newuidmap: hide it.
	t.Setenv("PATH", "/nonexistent")

	start := func(key string, opts userns.HelperOptions) {
		h, err := userns.StartHelper(ctx, opts)
		r := singleOf(err)
		if err == nil {
			r.Map, r.GIDMap = h.UIDMap().String(), h.GIDMap().String()
			var id userns.IDInfo
			if err := h.Call(userns.IDOp, nil, &id); err != nil {
				r.Err = err.Error()
			}
			r.Inside, r.EUID, r.CapEff = strings.Join(strings.Fields(id.UIDMap), " "), id.EUID, id.CapEff
			if err := h.Close(); err != nil && r.Err == "" {
				r.Err = err.Error()
			}
		}
		res[key] = r
	}
	empty := userns.HelperOptions{SubUIDFile: p("subid-empty"), SubGIDFile: p("subid-empty")}
	start("no-ranges", empty)
	start("no-file", userns.HelperOptions{SubUIDFile: p("missing"), SubGIDFile: p("missing")})
	own, _ := userns.ParseMap(fmt.Sprintf("0:%d:1", nobody))
	start("own-map", userns.HelperOptions{UIDMap: own, GIDMap: own, SubUIDFile: p("subid-empty"), SubGIDFile: p("subid-empty")})
	other, _ := userns.ParseMap("0:1:1")
	start("other-map", userns.HelperOptions{UIDMap: other, SubUIDFile: p("subid-empty"), SubGIDFile: p("subid-empty")})
	two, _ := userns.ParseMap(fmt.Sprintf("0:%d:2", nobody))
	start("two-ids", userns.HelperOptions{UIDMap: two, SubUIDFile: p("subid-empty"), SubGIDFile: p("subid-empty")})
	// With subordinate ranges the maps go through newuidmap as before
	// (missing here).
	start("ranges", userns.HelperOptions{SubUIDFile: p("subid-nobody"), SubGIDFile: p("subid-nobody")})

	// The Setter on the caller's own files and on others'.
	s := fcaps.NewSetter(fcaps.SetterOptions{SubUIDFile: p("subid-empty"), SubGIDFile: p("subid-empty")})
	res["set-own"] = singleOf(s.Set(p("own"), capChown(nobody)))
	res["remove-own"] = singleOf(s.Remove(p("own-remove")))
	res["set-other"] = singleOf(s.Set(p("other"), capChown(nobody)))
	res["remove-other"] = singleOf(s.Remove(p("other-remove")))
	res["rootid-other"] = singleOf(s.Set(p("own-keep"), capChown(1)))
	res["rootid-0"] = singleOf(s.Set(p("own-keep"), xattrfmt.FileCaps{Revision: xattrfmt.Revision2, Effective: true, Permitted: 1}))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", b)
}

// TestHelperSingleID: a caller without subordinate ids gets a helper with
// the single-id maps 0:<own id>:1, written without newuidmap, which sets
// and removes caps on its own files (rootid = its uid) and refuses any
// other id; with subordinate ranges, newuidmap is still used.
func TestHelperSingleID(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "getcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	write := func(name string, uid int, c *xattrfmt.FileCaps) {
		t.Helper()
		if err := os.WriteFile(p(name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p(name), uid, uid); err != nil {
			t.Fatal(err)
		}
		if c != nil {
			v, err := xattrfmt.Encode(*c)
			if err != nil {
				t.Fatal(err)
			}
			if err := syscall.Setxattr(p(name), fcaps.AttrName, v, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	old := capChown(nobody)
	write("own", nobody, nil)
	write("own-remove", nobody, &old)
	write("own-keep", nobody, nil)
	write("other", 1, nil)
	write("other-remove", 1, &old)
	if err := os.WriteFile(p("subid-empty"), []byte("# no ranges\nsomeone:500000:65536\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p("subid-nobody"), fmt.Appendf(nil, "nobody:500000:65536\n%d:600000:65536\n", nobody), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("/proc/self/exe", "-test.run=^TestHelperSingleIDChild$", "-test.v")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), singleChildEnv+"="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child as uid %d: %v\n%s", nobody, err, out)
	}
	_, js, ok := strings.Cut(string(out), "RESULT ")
	if !ok {
		t.Fatalf("no result from the child:\n%s", out)
	}
	js, _, _ = strings.Cut(js, "\n")
	t.Logf("results of the child: %s", js)
	var res map[string]singleResult
	if err := json.Unmarshal([]byte(js), &res); err != nil {
		t.Fatal(err)
	}
	single := fmt.Sprintf("0:%d:1", nobody)
	check := func(key string, ok bool, what string) {
		t.Helper()
		if !ok {
			t.Errorf("%s: got %+v, want %s", key, res[key], what)
		}
	}
	for _, k := range []string{"no-ranges", "no-file", "own-map"} {
		r := res[k]
		check(k, r.Err == "" && r.Map == single && r.GIDMap == single && r.Inside == fmt.Sprintf("0 %d 1", nobody) &&
			r.EUID == 0 && strings.Trim(r.CapEff, "0") != "", "a helper as uid 0 with capabilities and the maps "+single)
	}
	check("other-map", res["other-map"].Unmapped && strings.Contains(res["other-map"].Err, "no subordinate ids"), "ErrUnmapped")
	check("two-ids", res["two-ids"].Unmapped, "ErrUnmapped")
	check("ranges", res["ranges"].NotFound && strings.Contains(res["ranges"].Err, "newuidmap"), "exec.ErrNotFound naming newuidmap (no fallback)")
	check("set-own", res["set-own"].Err == "", "success")
	check("remove-own", res["remove-own"].Err == "", "success")
	check("set-other", res["set-other"].Outside && strings.Contains(res["set-other"].Err, "owner uid 1 is outside"), "ErrOutsideHelperMap for the owner")
	check("remove-other", res["remove-other"].Outside, "ErrOutsideHelperMap")
	check("rootid-other", res["rootid-other"].Outside && strings.Contains(res["rootid-other"].Err, "rootid 1 is outside"), "ErrOutsideHelperMap for rootid 1")
	check("rootid-0", res["rootid-0"].Outside, "ErrOutsideHelperMap for rootid 0")
	for _, k := range []string{"set-other", "rootid-other"} {
		check(k, strings.Contains(res[k].Err, fmt.Sprintf("the caller owns, only %d (the caller's own id only", nobody)), "the error naming the caller's own id")
	}

	got := map[string]string{}
	for _, n := range []string{"own", "own-remove", "own-keep", "other", "other-remove"} {
		out, err := exec.Command("getcap", "-n", p(n)).CombinedOutput()
		if err != nil {
			t.Fatalf("getcap -n %s: %v: %s", n, err, out)
		}
		got[n] = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), p(n)))
	}
	want := map[string]string{
		"own":          fmt.Sprintf("cap_chown=ep [rootid=%d]", nobody),
		"own-remove":   "",
		"own-keep":     "",
		"other":        "",
		"other-remove": fmt.Sprintf("cap_chown=ep [rootid=%d]", nobody),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("getcap -n on the host after the run as nobody (-want +got):\n%s", diff)
	}
}
