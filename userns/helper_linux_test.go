package userns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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
	testutil.ChildEnv(t, helperChildEnv, "TestHelperRootless")
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
	testutil.PrintResult(t, res)
}

func TestHelperRootless(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	u := testutil.User(t, testutil.UserOptions{Prefix: "uns", SubStart: 400000, SubCount: 65536})
	name, uid := u.Name, u.UID
	out := u.RunTest(t, "TestHelperChild", helperChildEnv+"=1")
	var res helperChildResult
	testutil.ReadResult(t, out, &res)
	if res.ID.EUID != 0 || res.ID.EGID != 0 {
		t.Errorf("helper ran as %d:%d, want 0:0 (%+v)", res.ID.EUID, res.ID.EGID, res.ID)
	}
	if res.ID.CapEff == "" || strings.Trim(res.ID.CapEff, "0") == "" {
		t.Errorf("helper has no capabilities: CapEff %q", res.ID.CapEff)
	}
	// The map of the helper: the user's own uid, then its ranges.
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
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Error(err)
		}
	})
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
