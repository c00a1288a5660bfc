package cli

import (
	"context"
	"errors"
	"os"
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
	})
}

// TestScripts runs the end-to-end scripts in testdata/script. Scripts that
// need root start with [!root] skip; under NSCAP_TEST_REQUIRE_ROOT=1 the
// [root] condition fails instead of answering false.
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
