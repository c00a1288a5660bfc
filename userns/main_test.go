package userns

import (
	"testing"

	"github.com/nscap/nscap/internal/testutil"
)

// TestMain lets the test binary serve as the helper of StartHelper, and as
// the processes of nested namespaces that tests build (testutil.Nest);
// else it runs the tests with testutil's leak checks.
func TestMain(m *testing.M) {
	testutil.Main(m, HelperMain)
}
