package userns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nscap/nscap/internal/testutil"
)

const helperChildEnv = "NSCAP_USERNS_TEST_HELPER_CHILD"

func init() {
	RegisterHelperOp("userns.test.fail", func(json.RawMessage, HelperEmit) (json.RawMessage, error) {
		return nil, &os.PathError{Op: "test", Path: "/x", Err: syscall.EPERM}
	})
	RegisterHelperOp("userns.test.echo", func(req json.RawMessage, _ HelperEmit) (json.RawMessage, error) {
		return req, nil
	})
	// userns.test.stream reads extra file 0 and emits one event per line
	// of it, then one per byte of extra file 1 (a pipe), and returns the
	// number of events.
	RegisterHelperOp("userns.test.stream", func(_ json.RawMessage, emit HelperEmit) (json.RawMessage, error) {
		n := 0
		for i := range 2 {
			f, err := HelperFile(i)
			if err != nil {
				return nil, err
			}
			b, err := io.ReadAll(f)
			if err != nil {
				return nil, err
			}
			parts := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			if i == 1 {
				parts = strings.Split(string(b), "")
			}
			for _, p := range parts {
				if err := emit(testEvent{N: n, Text: p}); err != nil {
					return nil, err
				}
				n++
			}
		}
		if _, err := HelperFile(2); err == nil {
			return nil, errors.New("HelperFile(2) of two files did not fail")
		}
		fmt.Fprintln(os.Stderr, "stream done")
		return json.Marshal(n)
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

// testEvent is the event of userns.test.stream.
type testEvent struct {
	N    int    `json:"n"`
	Text string `json:"text"`
}

// TestHelperEventsAndFiles hands a helper a file and a pipe and checks
// the events it streams back: all of them, in order, before CallEvents
// returns; an error of the handler stops the helper and is returned.
func TestHelperEventsAndFiles(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	m, _ := ParseMap("0:100000:65536")
	start := func(lines string, bytes string) (*Helper, *strings.Builder) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "lines")
		if err := os.WriteFile(p, []byte(lines), 0o600); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		go func() {
			_, _ = pw.WriteString(bytes)
			pw.Close()
		}()
		var stderr strings.Builder
		h, err := StartHelper(context.Background(), HelperOptions{UIDMap: m, GIDMap: m, ExtraFiles: []*os.File{f, pr}, Stderr: &stderr})
		if err != nil {
			t.Fatal(err)
		}
		return h, &stderr
	}

	h, stderr := start("a\nb\nc\n", "xyz")
	var got []string
	var n int
	err := h.CallEvents("userns.test.stream", nil, &n, HelperEvents(func(ev testEvent) error {
		got = append(got, fmt.Sprintf("%d:%s", ev.N, ev.Text))
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"0:a", "1:b", "2:c", "3:x", "4:y", "5:z"}
	if !slices.Equal(got, want) || n != len(want) {
		t.Errorf("events %q, result %d; want %q, %d", got, n, want, len(want))
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if stderr.String() != "stream done\n" {
		t.Errorf("helper stderr = %q", stderr.String())
	}

	h, _ = start(strings.Repeat("line\n", 10000), "")
	stop := errors.New("stop here")
	seen := 0
	err = h.CallEvents("userns.test.stream", nil, nil, HelperEvents(func(ev testEvent) error {
		seen++
		if ev.N == 2 {
			return stop
		}
		return nil
	}))
	if !errors.Is(err, stop) || seen != 3 {
		t.Errorf("CallEvents with a failing handler = %v after %d events, want %v after 3", err, seen, stop)
	}
	if err := h.Call(IDOp, nil, nil); err == nil {
		t.Errorf("a helper stopped by its handler still serves calls")
	}
	if err := h.Close(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Close of a stopped helper = %v, want the kill", err)
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
