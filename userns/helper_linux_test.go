package userns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nscap/nscap/internal/testutil"
)

const helperChildEnv = "NSCAP_USERNS_TEST_HELPER_CHILD"

func init() {
	RegisterHelperOp("userns.test.fail", func(json.RawMessage) (json.RawMessage, error) {
		return nil, &os.PathError{Op: "test", Path: "/x", Err: syscall.EPERM}
	})
	RegisterHelperOp("userns.test.echo", func(req json.RawMessage) (json.RawMessage, error) {
		return req, nil
	})
}

// helperChildResult is what TestHelperChild reports to TestHelperRootless.
type helperChildResult struct {
	ID        IDInfo `json:"id"`
	Echo      string `json:"echo"`
	FailErr   string `json:"fail_err"`
	FailEPERM bool   `json:"fail_eperm"`
	OutsideOK bool   `json:"outside_refused"`
	Map       string `json:"map"`
}

// TestHelperChild runs as the unprivileged test user, started by
// TestHelperRootless; on its own it has nothing to do.
func TestHelperChild(t *testing.T) {
	if os.Getenv(helperChildEnv) == "" {
		t.Skip("started by TestHelperRootless only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := StartHelper(ctx, HelperOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var res helperChildResult
	res.Map = h.UIDMap().String()
	if err := h.Call(IDOp, nil, &res.ID); err != nil {
		t.Fatal(err)
	}
	for range 3 { // one helper serves many requests
		if err := h.Call("userns.test.echo", "hello", &res.Echo); err != nil {
			t.Fatal(err)
		}
	}
	err = h.Call("userns.test.fail", nil, nil)
	res.FailErr = fmt.Sprint(err)
	res.FailEPERM = errors.Is(err, syscall.EPERM)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	bad, _ := ParseMap("0:1:1")
	_, err = StartHelper(ctx, HelperOptions{UIDMap: bad})
	res.OutsideOK = errors.Is(err, ErrUnmapped)
	b, _ := json.Marshal(res)
	fmt.Printf("RESULT %s\n", b)
}

// backupFile saves path (which may not exist) and restores it at cleanup.
func backupFile(t *testing.T, path string) {
	t.Helper()
	old, err := os.ReadFile(path)
	existed := err == nil
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if existed {
			if err := os.WriteFile(path, old, 0o644); err != nil {
				t.Errorf("restore %s: %v", path, err)
			}
		} else {
			os.Remove(path)
		}
	})
}

func appendLine(t *testing.T, path, line string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(line + "\n"); err != nil {
		t.Fatal(err)
	}
}

func TestHelperRootless(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "useradd", "userdel", "newuidmap", "newgidmap")
	name := fmt.Sprintf("nsuns%d", os.Getpid()%100000)
	backupFile(t, "/etc/subuid")
	backupFile(t, "/etc/subgid")
	if out, err := exec.Command("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	appendLine(t, "/etc/subuid", name+":400000:65536")
	appendLine(t, "/etc/subgid", name+":400000:65536")

	cmd := exec.Command("/proc/self/exe", "-test.run=^TestHelperChild$", "-test.v")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), helperChildEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: false}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper child as %s: %v\n%s", name, err, out)
	}
	_, js, ok := strings.Cut(string(out), "RESULT ")
	if !ok {
		t.Fatalf("no result from helper child:\n%s", out)
	}
	js, _, _ = strings.Cut(js, "\n")
	var res helperChildResult
	if err := json.Unmarshal([]byte(js), &res); err != nil {
		t.Fatal(err)
	}
	if res.ID.EUID != 0 || res.ID.EGID != 0 {
		t.Errorf("helper ran as %d:%d, want 0:0 (%+v)", res.ID.EUID, res.ID.EGID, res.ID)
	}
	if res.ID.CapEff == "" || strings.Trim(res.ID.CapEff, "0") == "" {
		t.Errorf("helper has no capabilities: CapEff %q", res.ID.CapEff)
	}
	// useradd may have given the user a range of its own before ours.
	ranges, err := ReadSubID("/etc/subuid", name, uint32(uid))
	if err != nil {
		t.Fatal(err)
	}
	want, err := RootlessMap(uint32(uid), ranges)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(want.String(), ":400000:65536") {
		t.Errorf("rootless map %s lacks the test range", want)
	}
	if res.Map != want.String() {
		t.Errorf("helper map %s, want %s", res.Map, want)
	}
	inside, err := ParseProcMap(res.ID.UIDMap)
	if err != nil || inside.String() != res.Map {
		t.Errorf("uid_map seen inside = %q (%v), want %s", res.ID.UIDMap, err, res.Map)
	}
	if res.Echo != "hello" || !res.FailEPERM || !strings.Contains(res.FailErr, "userns.test.fail") {
		t.Errorf("helper calls: %+v", res)
	}
	if !res.OutsideOK {
		t.Errorf("a map outside the user's ranges was not refused with ErrUnmapped")
	}
}

func TestHelperRootMaps(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	m, _ := ParseMap("0:100000:65536")
	h, err := StartHelper(context.Background(), HelperOptions{UIDMap: m, GIDMap: m})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var id IDInfo
	if err := h.Call(IDOp, nil, &id); err != nil {
		t.Fatal(err)
	}
	if id.EUID != 0 || strings.Fields(id.UIDMap)[1] != "100000" {
		t.Errorf("helper id = %+v", id)
	}
	if err := h.Call("no.such.op", nil, nil); err == nil || !strings.Contains(err.Error(), "unknown helper op") {
		t.Errorf("unknown op = %v", err)
	}
}
