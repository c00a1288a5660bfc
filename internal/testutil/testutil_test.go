package testutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// leakEnv makes the re-executed test binary run a fake test suite that
// leaks what its value names, under Checked (see TestMain).
const leakEnv = "NSCAP_TESTUTIL_TEST_LEAK"

func TestMain(m *testing.M) {
	Main(m, leakMain)
}

// leakMain runs the fake suite of leakEnv: "none", "fd", "child",
// "zombie", or "fail-fd" (a failing suite that leaks an fd).
func leakMain() {
	kind := os.Getenv(leakEnv)
	if kind == "" {
		return
	}
	var keep []*os.File
	var kill []int
	code := Checked(RunFunc(func() int {
		switch kind {
		case "fd", "fail-fd":
			f, err := os.Open("/etc/hostname")
			if err != nil {
				return 2
			}
			keep = append(keep, f)
		case "child":
			// ForkExec: no pidfd, so only the child leaks.
			pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "30"}, &syscall.ProcAttr{
				Sys: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
			})
			if err != nil {
				return 2
			}
			kill = append(kill, pid)
		case "zombie":
			pid, err := syscall.ForkExec("/bin/true", []string{"true"}, nil)
			if err != nil {
				return 2
			}
			// Wait until it exited, without reaping it.
			for range 1000 {
				st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
				if i := bytes.LastIndexByte(st, ')'); i > 0 && len(st) > i+2 && st[i+2] == 'Z' {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		if kind == "fail-fd" {
			return 1
		}
		return 0
	})).Run()
	for _, pid := range kill {
		_ = syscall.Kill(pid, syscall.SIGKILL) // it may have exited already
	}
	os.Exit(code)
}

func TestChecked(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind string
		code int
		msg  string // regexp on stderr; "" for no output
	}{
		{"none", 0, ""},
		{"fd", LeakExit, `(?m)^testutil: the tests leaked:\n\t\d+ open file descriptors before the tests, \d+ after\n\tfd \d+ -> /etc/hostname$`},
		{"fail-fd", 1, `fd \d+ -> /etc/hostname`},
		{"child", LeakExit, `child process \d+ not reaped: sleep 30\n`},
		{"zombie", LeakExit, `child process \d+ not reaped: \[true\] \(zombie\)\n`},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command("/proc/self/exe")
			cmd.Env = append(os.Environ(), leakEnv+"="+tc.kind)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code {
				t.Errorf("suite leaking %s: exit %d, want %d; stderr:\n%s", tc.kind, code, tc.code, &stderr)
			}
			if tc.msg == "" {
				if stderr.Len() != 0 {
					t.Errorf("suite leaking nothing: stderr %q, want none", &stderr)
				}
			} else if !regexp.MustCompile(tc.msg).Match(stderr.Bytes()) {
				t.Errorf("suite leaking %s: stderr %q, want a match for %q", tc.kind, &stderr, tc.msg)
			}
		})
	}
}

func TestLeaked(t *testing.T) {
	t.Parallel()
	fds := map[int]string{0: "/dev/null", 1: "pipe:[1]", 2: "pipe:[2]"}
	for _, tc := range []struct {
		name      string
		fds, kids map[int]string
		want      []string
	}{
		{"nothing", fds, nil, nil},
		{"fewer fds", map[int]string{0: "/dev/null"}, nil, nil},
		{"same count, other fd", map[int]string{0: "/dev/null", 1: "pipe:[1]", 5: "/x"}, nil, nil},
		{
			"one more fd",
			map[int]string{0: "/dev/null", 1: "pipe:[1]", 2: "/y", 7: "pipe:[2]"},
			nil,
			[]string{"3 open file descriptors before the tests, 4 after", "fd 2 -> /y", "fd 7 -> pipe:[2]"},
		},
		{"child", fds, map[int]string{42: "sleep 1"}, []string{"child process 42 not reaped: sleep 1"}},
	} {
		got := leaked(fds, tc.fds, map[int]string{}, tc.kids)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s: leaked (-want +got):\n%s", tc.name, diff)
		}
	}
}

func TestRewrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "subuid")
	const orig = "a:1:2\n# comment\n\nb:3:4" // no final newline
	if err := os.WriteFile(p, []byte(orig), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := appendLine(p, "me:400000:65536"); err != nil {
		t.Fatal(err)
	}
	read := func() string {
		t.Helper()
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got, want := read(), orig+"\nme:400000:65536\n"; got != want {
		t.Errorf("after appendLine: %q, want %q", got, want)
	}
	// Lines another process adds meanwhile stay.
	if err := appendLine(p, "other:5:6"); err != nil {
		t.Fatal(err)
	}
	if err := removeLines(p, func(l string) bool { return l == "me:400000:65536" }); err != nil {
		t.Fatal(err)
	}
	if got, want := read(), orig+"\nother:5:6\n"; got != want {
		t.Errorf("after removeLines: %q, want %q", got, want)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o640 {
		t.Errorf("mode after rewrite %v, want 0640", st.Mode().Perm())
	}
	// Nothing to change: the file is not replaced.
	if err := removeNameLines(p, "nobody-here"); err != nil {
		t.Fatal(err)
	}
	if st2, err := os.Stat(p); err != nil || !os.SameFile(st, st2) {
		t.Errorf("a rewrite without change replaced the file (%v)", err)
	}
	// A missing file is created only for content.
	q := filepath.Join(dir, "missing")
	if err := removeNameLines(q, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(q); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("removeLines created %s (%v)", q, err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left in %s: %v", dir, ents)
	}
}

func TestTraversable(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	deep := filepath.Join(base, "a", "b")
	if err := os.MkdirAll(deep, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(base, "a"), 0o710); err != nil {
		t.Fatal(err)
	}
	Traversable(t, deep)
	for d, want := range map[string]os.FileMode{deep: 0o755, filepath.Join(base, "a"): 0o755, base: 0o755} {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got&want != want {
			t.Errorf("%s: mode %v, want at least %v", d, got, want)
		}
	}
}

// whoamiEnv marks the run of TestUserChild by TestCreateUser.
const whoamiEnv = "NSCAP_TESTUTIL_TEST_WHOAMI"

type whoami struct {
	UID, GID, Arg int
	Dir           string
}

// TestUserChild runs as the test user, started by TestCreateUser.
func TestUserChild(t *testing.T) {
	arg, _ := strconv.Atoi(ChildEnv(t, whoamiEnv, "TestCreateUser"))
	wd, _ := os.Getwd()
	PrintResult(t, whoami{UID: os.Getuid(), GID: os.Getgid(), Arg: arg, Dir: wd})
}

func TestCreateUser(t *testing.T) {
	RequireRoot(t)
	files := []string{SubUIDFile, SubGIDFile}
	before := map[string]string{}
	unlock := lockUsers(t, "none")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		before[f] = string(b)
	}
	unlock()
	// A user left by a test process that died: the next User deletes it.
	stale := fmt.Sprintf("nscapstale%d", os.Getpid())
	unlock = lockUsers(t, "none")
	// A uid of its own far above any in use: useradd's first free uid may
	// be one that a concurrent test runs processes as, and userdel
	// refuses to delete a user whose uid a process has.
	staleUID := strconv.Itoa(3_500_000_000 + os.Getpid())
	if out, err := exec.Command("useradd", "-M", "-N", "-u", staleUID, "-s", "/usr/sbin/nologin", stale).CombinedOutput(); err != nil {
		unlock()
		t.Fatalf("useradd: %v: %s", err, out)
	}
	err := appendLine(SubUIDFile, stale+":500000:10")
	unlock()
	if err != nil {
		t.Fatal(err)
	}
	var name string
	t.Run("user", func(t *testing.T) {
		u := User(t, UserOptions{Prefix: "tu", SubStart: 400000, SubCount: 65536})
		name = u.Name
		if _, err := user.Lookup(stale); err == nil {
			t.Errorf("stale user %s not deleted", stale)
		}
		if !regexp.MustCompile(`^nscaptu\d+(x\d+)?$`).MatchString(u.Name) {
			t.Errorf("user name %q", u.Name)
		}
		pw, err := user.Lookup(u.Name)
		if err != nil || pw.Uid != strconv.Itoa(u.UID) || pw.Gid != strconv.Itoa(u.GID) || u.UID == 0 {
			t.Fatalf("user %+v: lookup %+v, %v", u, pw, err)
		}
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if n := strings.Count("\n"+string(b), "\n"+u.Name+":"); n != 1 || !strings.Contains("\n"+string(b), "\n"+u.Name+":400000:65536\n") {
				t.Errorf("%s: want exactly the range 400000:65536 for %s:\n%s", f, u.Name, b)
			}
		}
		// The lock is held: another taker would wait.
		path := UserLockFile
		if _, err := os.Stat(filepath.Dir(path)); err != nil {
			path = userLockFallback
		}
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
			t.Errorf("flock %s while a test user exists = %v, want EWOULDBLOCK", path, err)
		}
		holder, _ := os.ReadFile(path)
		if !strings.Contains(string(holder), "user "+u.Name) {
			t.Errorf("lock file names %q, want the holder %s", holder, u.Name)
		}
		// RunTest runs the test binary as the user.
		var w whoami
		ReadResult(t, u.RunTest(t, "TestUserChild", whoamiEnv+"=7"), &w)
		if want := (whoami{UID: u.UID, GID: u.GID, Arg: 7, Dir: "/"}); w != want {
			t.Errorf("child ran as %+v, want %+v", w, want)
		}
	})
	if _, err := user.Lookup(name); err == nil {
		t.Errorf("user %s still exists after the cleanup", name)
	}
	// Compare under the lock: tests of other packages may hold a user.
	unlock = lockUsers(t, "none")
	defer unlock()
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if string(b) != before[f] {
			t.Errorf("%s after the test: %q, want %q as before", f, b, before[f])
		}
	}
}
