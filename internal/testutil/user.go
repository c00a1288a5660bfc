package testutil

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// UserLockFile is the lock that serialises test users across test
// processes: `go test ./...` runs packages in parallel, and their tests
// all edit /etc/passwd, /etc/subuid and /etc/subgid.
const UserLockFile = "/run/lock/nscap-test-users.lock"

// userLockFallback is used when /run/lock does not exist.
const userLockFallback = "/tmp/nscap-test-users.lock"

// userLockWait is how long [User] waits for another test's user.
const userLockWait = 5 * time.Minute

// SubUIDFile and SubGIDFile are the files of subordinate ids that
// [User] adds its ranges to (subuid(5), subgid(5)).
const (
	SubUIDFile = "/etc/subuid"
	SubGIDFile = "/etc/subgid"
)

// UserOptions says what [User] creates.
type UserOptions struct {
	// Prefix follows "nscap" in the user's name, which then holds the
	// pid of the test process and, from the second user of a process
	// on, a counter. It must be lowercase letters and digits; the
	// default is "t".
	Prefix string
	// SubCount > 0 adds the range SubStart:SubCount for the user to
	// /etc/subuid and /etc/subgid (the same range in both), and then
	// newuidmap and newgidmap are required too.
	SubStart, SubCount uint32
}

// TestUser is an unprivileged user that exists for one test.
type TestUser struct {
	Name     string // nscap<Prefix><pid>, from a process's second user on + "x<n>"
	UID, GID int    // GID is the default group (useradd -N)
}

var userSeq atomic.Int64

// User creates an unprivileged user for the test (useradd -M -N, shell
// nologin, no home, none of the subordinate ranges useradd would assign)
// and, when opts.SubCount > 0, gives it the subordinate range
// opts.SubStart:opts.SubCount in /etc/subuid and /etc/subgid. It needs
// root and useradd/userdel ([RequireRoot], [RequireTool]).
//
// Tests in several packages create users with the same ranges, and go
// test runs packages in parallel: User first takes an exclusive flock(2)
// on [UserLockFile], which it holds until the test's cleanup, so one
// test user exists at a time on the machine. The files are edited by
// rewriting a temporary file in the same directory and renaming it over
// the old one (same mode and owner), and only the user's own lines are
// added and removed: the rest of the file is kept byte for byte.
// Cleanup deletes the user (userdel), removes any line still naming it,
// and releases the lock. Users that a test process left when it died
// before its cleanup are deleted by the next User.
func User(tb testing.TB, opts UserOptions) *TestUser {
	tb.Helper()
	RequireRoot(tb)
	RequireTool(tb, "useradd", "userdel")
	if opts.SubCount > 0 {
		RequireTool(tb, "newuidmap", "newgidmap")
	}
	if opts.Prefix == "" {
		opts.Prefix = "t"
	}
	name := fmt.Sprintf("nscap%s%d", opts.Prefix, os.Getpid())
	if n := userSeq.Add(1); n > 1 {
		name += "x" + strconv.FormatInt(n, 10)
	}

	unlock := lockUsers(tb, name)
	var cleanups []func()
	tb.Cleanup(func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
		unlock()
	})

	sweepStaleUsers(tb)
	// No automatic subordinate ranges (-K): useradd would take the
	// first free one, 100000:65536, which root-side tests of other
	// packages use as helper maps at the same time, and userdel refuses
	// while processes run as ids of the user's ranges.
	if out, err := exec.Command("useradd", "-M", "-N", "-s", "/usr/sbin/nologin",
		"-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name).CombinedOutput(); err != nil {
		tb.Fatalf("useradd %s: %v: %s", name, err, out)
	}
	cleanups = append(cleanups, func() {
		deleteUser(tb, name)
		// userdel removes the user's ranges where shadow supports
		// subordinate ids; make sure, touching only this user's lines.
		for _, f := range []string{SubUIDFile, SubGIDFile} {
			if err := removeNameLines(f, name); err != nil {
				tb.Error(err)
			}
		}
	})
	u, err := user.Lookup(name)
	if err != nil {
		tb.Fatal(err)
	}
	tu := &TestUser{Name: name}
	tu.UID, _ = strconv.Atoi(u.Uid)
	tu.GID, _ = strconv.Atoi(u.Gid)

	if opts.SubCount > 0 {
		line := fmt.Sprintf("%s:%d:%d", name, opts.SubStart, opts.SubCount)
		for _, f := range []string{SubUIDFile, SubGIDFile} {
			if err := appendLine(f, line); err != nil {
				tb.Fatal(err)
			}
			cleanups = append(cleanups, func() {
				if err := removeLines(f, func(l string) bool { return l == line }); err != nil {
					tb.Error(err)
				}
			})
		}
	}
	return tu
}

// deleteUser deletes the test user name. userdel refuses while a
// process runs as the user: processes the test started as the user may
// still be exiting (a helper whose parent just quit), so it waits for
// them a while; processes still there then are a leak: it names and
// kills them, and fails the test.
func deleteUser(tb testing.TB, name string) {
	tb.Helper()
	u, err := user.Lookup(name)
	if err != nil {
		tb.Errorf("delete test user: %v", err)
		return
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	// userdel also counts the processes running as one of the user's
	// subordinate uids, e.g. those of a helper user namespace.
	ids := [][2]uint64{{uid, 1}}
	if b, err := os.ReadFile(SubUIDFile); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			f := strings.Split(l, ":")
			if len(f) == 3 && (f[0] == name || f[0] == u.Uid) {
				start, err1 := strconv.ParseUint(f[1], 10, 32)
				n, err2 := strconv.ParseUint(f[2], 10, 32)
				if err1 == nil && err2 == nil {
					ids = append(ids, [2]uint64{start, n})
				}
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		procs := userProcesses(ids)
		if len(procs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			for pid, desc := range procs {
				tb.Errorf("process %d of the test user %s still runs at cleanup: %s; killing it", pid, name, desc)
				_ = syscall.Kill(pid, syscall.SIGKILL) // it may be gone already
			}
			time.Sleep(100 * time.Millisecond)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
		tb.Errorf("userdel %s: %v: %s", name, err, out)
	}
}

// userProcesses maps the pids of the processes whose real, effective or
// saved uid is in one of the ranges ids ({start, count}) to their
// command lines.
func userProcesses(ids [][2]uint64) map[int]string {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	procs := map[int]string{}
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/status")
		if err != nil {
			continue
		}
		_, rest, _ := strings.Cut(string(b), "\nUid:")
		line, _, _ := strings.Cut(rest, "\n")
		f := strings.Fields(line)
		for _, s := range f[:min(3, len(f))] {
			id, err := strconv.ParseUint(s, 10, 32)
			if err == nil && slices.ContainsFunc(ids, func(r [2]uint64) bool { return id >= r[0] && id-r[0] < r[1] }) {
				pid, _ := strconv.Atoi(filepath.Base(d))
				procs[pid] = fmt.Sprintf("%s (uid %d)", describeProcess(pid), id)
				break
			}
		}
	}
	return procs
}

// testUserRE matches the names User gives.
var testUserRE = regexp.MustCompile(`^nscap[a-z0-9]*?[0-9]+(x[0-9]+)?$`)

// sweepStaleUsers deletes the test users, and their lines in /etc/subuid
// and /etc/subgid, that a test process left when it died before its
// cleanup (a crash, a test timeout). It runs under the user lock: no
// live test process then has a user.
func sweepStaleUsers(tb testing.TB) {
	tb.Helper()
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		tb.Fatal(err)
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		name, _, _ := strings.Cut(l, ":")
		if !testUserRE.MatchString(name) {
			continue
		}
		tb.Logf("deleting the stale test user %s", name)
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			tb.Fatalf("userdel %s (stale): %v: %s", name, err, out)
		}
		for _, f := range []string{SubUIDFile, SubGIDFile} {
			if err := removeNameLines(f, name); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// lockUsers takes the user lock for the test, waiting for other tests to
// release it, and returns the function that releases it.
func lockUsers(tb testing.TB, name string) func() {
	tb.Helper()
	path := UserLockFile
	if _, err := os.Stat(filepath.Dir(path)); err != nil {
		path = userLockFallback
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(userLockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			tb.Fatalf("flock %s: %v", path, err)
		}
		if time.Now().After(deadline) {
			holder, _ := os.ReadFile(path)
			f.Close()
			tb.Fatalf("flock %s: held for %v by %s", path, userLockWait, bytes.TrimSpace(holder))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Name the holder, for the message above in another process.
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "pid %d, %s, user %s\n", os.Getpid(), tb.Name(), name)
	}
	return func() {
		_ = f.Truncate(0) // the holder's name is informative only
		f.Close()         // releases the lock
	}
}

// appendLine adds line to the file at path.
func appendLine(path, line string) error {
	return rewrite(path, func(b []byte) []byte {
		if len(b) > 0 && b[len(b)-1] != '\n' {
			b = append(b, '\n')
		}
		return append(b, line+"\n"...)
	})
}

// removeNameLines removes the lines of name ("name:...") from the file.
func removeNameLines(path, name string) error {
	return removeLines(path, func(l string) bool { return strings.HasPrefix(l, name+":") })
}

// removeLines removes the lines for which drop is true.
func removeLines(path string, drop func(string) bool) error {
	return rewrite(path, func(b []byte) []byte {
		var out []byte
		for l := range strings.SplitAfterSeq(string(b), "\n") {
			if !drop(strings.TrimSuffix(l, "\n")) {
				out = append(out, l...)
			}
		}
		return out
	})
}

// rewrite replaces the content of path with edit(content) atomically: it
// writes a temporary file in the same directory with the old file's mode
// and owner and renames it over path. A missing file counts as empty; it
// is created (mode 0644) only when the new content is not empty, and
// nothing is written when the content does not change.
func rewrite(path string, edit func([]byte) []byte) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	mode, uid, gid := fs.FileMode(0o644), -1, -1
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm()
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			uid, gid = int(sys.Uid), int(sys.Gid)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	b := edit(bytes.Clone(old))
	if bytes.Equal(b, old) {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".nscap-test-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // after a failure; a no-op after the rename
	err = tmp.Chmod(mode)
	if err == nil && uid >= 0 {
		err = tmp.Chown(uid, gid)
	}
	if err == nil {
		_, err = tmp.Write(b)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("rewrite %s: %w", path, err)
	}
	return nil
}

// Command returns a command that runs as u (its uid and primary gid, no
// supplementary groups of root).
func (u *TestUser) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID)}}
	return cmd
}

// RunTest re-runs the current test binary as u with only the test named
// test (-test.run=^test$ -test.v), in directory / and with env added to
// the environment, and returns its combined output. It fails the test
// when the run fails. The child test typically starts with [ChildEnv]
// and ends with [PrintResult]; the parent reads that with [ReadResult].
func (u *TestUser) RunTest(tb testing.TB, test string, env ...string) []byte {
	tb.Helper()
	cmd := u.Command("/proc/self/exe", "-test.run=^"+test+"$", "-test.v")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		tb.Fatalf("%s as %s: %v\n%s", test, u.Name, err, out)
	}
	return out
}

// ChildEnv returns the value of the environment variable env, which a
// parent test (named parent) sets when it re-runs the test binary for a
// test that only serves it. Without the variable, the test skips.
func ChildEnv(tb testing.TB, env, parent string) string {
	tb.Helper()
	v := os.Getenv(env)
	if v == "" {
		tb.Skipf("started by %s only", parent)
	}
	return v
}

// resultPrefix starts the line of [PrintResult].
const resultPrefix = "RESULT "

// PrintResult prints v as JSON on a line of its own, for the parent
// test's [ReadResult].
func PrintResult(tb testing.TB, v any) {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	fmt.Printf("%s%s\n", resultPrefix, b)
}

// ReadResult decodes the line of [PrintResult] in a child's output out
// into v and returns its JSON text. It fails the test when there is none.
func ReadResult(tb testing.TB, out []byte, v any) string {
	tb.Helper()
	_, js, ok := strings.Cut(string(out), resultPrefix)
	if !ok {
		tb.Fatalf("no result from the child:\n%s", out)
	}
	js, _, _ = strings.Cut(js, "\n")
	if err := json.Unmarshal([]byte(js), v); err != nil {
		tb.Fatalf("result of the child: %v\n%s", err, out)
	}
	return js
}

// Traversable makes dir and its parents up to / searchable by everyone
// (adding 0755 to the mode of those lacking o+rx), so an unprivileged
// test user or a helper user namespace whose root is not host root
// reaches the files: t.TempDir makes 0700 directories.
func Traversable(tb testing.TB, dir string) {
	tb.Helper()
	dir, err := filepath.Abs(dir)
	if err != nil {
		tb.Fatal(err)
	}
	for d := dir; d != "/"; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			tb.Fatal(err)
		}
		if st.Mode().Perm()&0o005 != 0o005 {
			if err := os.Chmod(d, st.Mode().Perm()|0o755); err != nil {
				tb.Fatal(err)
			}
		}
	}
}
