// Package testutil holds the gates and helpers shared by nscap's tests.
//
// A test that needs root, a filesystem with xattrs or user namespaces calls
// the matching Require function. It skips when the requirement is missing,
// unless NSCAP_TEST_REQUIRE_ROOT=1 (set by `make test` as root, and so in
// CI): then a missing requirement is a failure, so CI never passes on
// silently skipped privileged tests.
package testutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Strict reports whether missing requirements must fail instead of skip.
func Strict() bool { return os.Getenv("NSCAP_TEST_REQUIRE_ROOT") == "1" }

func missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if Strict() {
		tb.Fatalf("required (NSCAP_TEST_REQUIRE_ROOT=1): "+format, args...)
	}
	tb.Skipf(format, args...)
}

// IsRoot reports whether the test runs with euid 0.
func IsRoot() bool { return os.Geteuid() == 0 }

// RequireRoot skips (or, when strict, fails) a test unless euid is 0.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if !IsRoot() {
		missing(tb, "needs root (euid %d)", os.Geteuid())
	}
}

// RequireTool skips (or, when strict, fails) unless each named program is
// on PATH.
func RequireTool(tb testing.TB, names ...string) {
	tb.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing(tb, "needs %s on PATH", n)
		}
	}
}

// RequireXattrFS skips (or fails) unless dir's filesystem stores
// trusted/security xattrs (probed with a user.* xattr, which every such
// filesystem also supports).
func RequireXattrFS(tb testing.TB, dir string) {
	tb.Helper()
	p := filepath.Join(dir, ".xattr-probe")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		tb.Fatal(err)
	}
	defer os.Remove(p)
	err := syscall.Setxattr(p, "user.nscap-probe", []byte("1"), 0)
	if errors.Is(err, syscall.ENOTSUP) {
		missing(tb, "filesystem of %s has no xattrs", dir)
	}
}

// RequireUserNS skips (or fails) unless unprivileged-style user namespaces
// can be created here (probed with unshare -U).
func RequireUserNS(tb testing.TB) {
	tb.Helper()
	if _, err := os.Stat("/proc/self/ns/user"); err != nil {
		missing(tb, "no user namespaces: %v", err)
	}
	out, err := exec.Command("unshare", "-U", "true").CombinedOutput()
	if err != nil {
		missing(tb, "cannot create a user namespace: %v: %s", err, strings.TrimSpace(string(out)))
	}
}

// TempDir returns a fresh directory for files that need xattrs. The Go
// test TempDir lives under TMPDIR, which may be a tmpfs: tmpfs stores
// security.capability only on recent kernels, so tests that write caps use
// this directory, placed under NSCAP_TEST_DIR when set.
func TempDir(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv("NSCAP_TEST_DIR")
	if base == "" {
		return tb.TempDir()
	}
	d, err := os.MkdirTemp(base, "nscap-test-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(d) })
	return d
}
