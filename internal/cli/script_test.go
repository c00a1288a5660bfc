package cli

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
)

// TestMain registers the real Main as the nscap command of the testscript
// scripts: testscript re-executes this test binary under that name. The
// tests run with testutil's leak checks.
func TestMain(m *testing.M) {
	// Serve as the helper user namespace of set and remove when
	// re-executed as one, and as the processes of nested namespaces.
	userns.HelperMain()
	testutil.NestMain()
	testscript.Main(testutil.Checked(m), map[string]func(){
		"nscap": func() {
			os.Exit(int(Main(context.Background(), os.Args[1:], System())))
		},
		// gendocs DIR: the man pages of make man (internal/cli/gendocs).
		"gendocs": func() {
			if len(os.Args) != 2 {
				fmt.Fprintln(os.Stderr, "usage: gendocs DIR")
				os.Exit(2)
			}
			if err := WriteManPages(NewRootCmd(NewFactory(System())), Version(), os.Args[1]); err != nil {
				fmt.Fprintln(os.Stderr, "gendocs:", err)
				os.Exit(1)
			}
		},
	})
}

// TestScripts runs the end-to-end scripts in testdata/script. Scripts that
// need root start with [!root] skip; under NSCAP_TEST_REQUIRE_ROOT=1 the
// [root] condition fails instead of answering false.
//
// Besides testscript's commands, scripts have (root only):
//
//	rawfs DIR         mount a small ext4 filesystem of its own at DIR
//	                  (testutil.RawFS), unmounted when the script ends
//	rawcap FILE [HEX] set the security.capability of FILE, on a rawfs, to
//	                  exactly the bytes HEX (none: the empty value), below
//	                  the kernel, which refuses such values through setxattr
func TestScripts(t *testing.T) {
	if testutil.IsRoot() {
		testutil.RequireTool(t, "setcap", "getcap", "getfattr", "setfattr", "mkfifo")
	}
	// Caps need a filesystem with security xattrs: work under
	// testutil.TempDir (NSCAP_TEST_DIR), not the default tmp dir.
	work := testutil.TempDir(t)
	testutil.RequireXattrFS(t, work)
	// The helper user namespace of set and remove (whose root is not
	// host root) must reach the scripts' files.
	testutil.Traversable(t, work)
	testscript.Run(t, testscript.Params{
		Dir:         "testdata/script",
		WorkdirRoot: work,
		Setup: func(env *testscript.Env) error {
			env.Values[rawFSKey{}] = &[]*testutil.RawFS{}
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"rawfs":  cmdRawFS(t),
			"rawcap": cmdRawCap,
		},
		Condition: func(cond string) (bool, error) {
			switch cond {
			case "root":
				if !testutil.IsRoot() && testutil.Strict() {
					return false, errors.New("[root]: needs root (NSCAP_TEST_REQUIRE_ROOT=1)")
				}
				return testutil.IsRoot(), nil
			}
			return false, errors.New("unknown condition " + cond)
		},
	})
}

// rawFSKey holds the *[]*testutil.RawFS of a script in its values.
type rawFSKey struct{}

// cmdRawFS returns the script command "rawfs DIR" of the scripts of t.
func cmdRawFS(t *testing.T) func(ts *testscript.TestScript, neg bool, args []string) {
	return func(ts *testscript.TestScript, neg bool, args []string) {
		if neg || len(args) != 1 {
			ts.Fatalf("usage: rawfs DIR")
		}
		if !testutil.IsRoot() {
			ts.Fatalf("rawfs: needs root to loop-mount an ext4 image (euid %d)", os.Geteuid())
		}
		// The image lies outside $WORK, so that the script's files are
		// only its own.
		r, err := testutil.MountRawFS(t.TempDir(), ts.MkAbs(args[0]))
		if err != nil {
			ts.Fatalf("rawfs: %v", err)
		}
		ts.Defer(func() {
			if err := r.Close(); err != nil {
				// A deferred function cannot fail the script (Fatalf
				// would panic outside a command): fail the test of all
				// scripts, which waits for them.
				t.Errorf("script %s: rawfs %s: %v", ts.Name(), args[0], err)
			}
		})
		list := ts.Value(rawFSKey{}).(*[]*testutil.RawFS)
		*list = append(*list, r)
	}
}

// cmdRawCap is the script command "rawcap FILE [HEX]".
func cmdRawCap(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 1 || len(args) > 2 {
		ts.Fatalf("usage: rawcap FILE [HEX]")
	}
	var value []byte
	if len(args) == 2 {
		v, err := hex.DecodeString(strings.TrimPrefix(args[1], "0x"))
		if err != nil {
			ts.Fatalf("rawcap: value %q: %v", args[1], err)
		}
		value = v
	}
	file := ts.MkAbs(args[0])
	for _, r := range *ts.Value(rawFSKey{}).(*[]*testutil.RawFS) {
		if strings.HasPrefix(file, r.Dir+string(filepath.Separator)) {
			ts.Check(r.Plant(testutil.CapAttr, map[string][]byte{file: value}))
			return
		}
	}
	ts.Fatalf("rawcap: %s is on no rawfs of the script", args[0])
}
