package fcaps_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// helperEnv marks a re-executed test binary that runs one fcaps call
// (inside a user namespace the parent set up) instead of the tests.
const helperEnv = "NSCAP_FCAPS_TEST_HELPER"

// TestMain serves as the helper of fcaps.Setter, or runs one fcaps call,
// when the test binary is re-executed as one; else it runs the tests with
// testutil's leak checks.
func TestMain(m *testing.M) {
	tests := testutil.RunFunc(func() int {
		code := m.Run()
		if benchDir != "" {
			if err := os.RemoveAll(benchDir); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}
		return code
	})
	testutil.Main(tests, userns.HelperMain, helperMain)
}

// helperMain runs helper and exits when helperEnv is set.
func helperMain() {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(helper(h))
	}
}

// helper runs "get PATH" or "set PATH ROOTID" and prints one line: "ok
// TEXT REV ROOTID" or "err K1,K2,... MESSAGE" naming the sentinels and
// errnos the error matches.
func helper(cmd string) int {
	f := strings.Fields(cmd)
	var err error
	var c xattrfmt.FileCaps
	switch f[0] {
	case "get":
		c, err = fcaps.Get(f[1])
	case "scan":
		// Report the first error Scan delivers, or the first value.
		var found *fcaps.Found
		serr := fcaps.Scan(context.Background(), []string{f[1]}, fcaps.ScanOptions{}, func(fd fcaps.Found) error {
			if found == nil || fd.Err != nil {
				found = &fd
			}
			return nil
		})
		switch {
		case serr != nil:
			err = serr
		case found == nil:
			err = errors.New("nothing found")
		default:
			c, err = found.Caps, found.Err
		}
	case "set":
		id, _ := strconv.ParseUint(f[2], 10, 32)
		err = fcaps.Set(f[1], xattrfmt.FileCaps{Revision: xattrfmt.Revision3, Effective: true, Permitted: 1 << 13, RootID: uint32(id)})
	default:
		fmt.Println("bad helper command", cmd)
		return 2
	}
	if err == nil {
		fmt.Printf("ok %s %d %d\n", c, c.Revision, c.RootID)
		return 0
	}
	var kinds []string
	for _, k := range []struct {
		name string
		err  error
	}{
		{"ErrNotVisible", fcaps.ErrNotVisible},
		{"ErrRootIDNotMapped", fcaps.ErrRootIDNotMapped},
		{"ErrNoCaps", fcaps.ErrNoCaps},
		{"EOVERFLOW", syscall.EOVERFLOW},
		{"EINVAL", syscall.EINVAL},
		{"EPERM", syscall.EPERM},
	} {
		if errors.Is(err, k.err) {
			kinds = append(kinds, k.name)
		}
	}
	fmt.Printf("err %s %v\n", strings.Join(kinds, ","), err)
	return 0
}
