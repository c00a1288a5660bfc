package testutil

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// LeakExit is the exit status of a test binary whose tests passed but
// leaked file descriptors or child processes (cilium testmain).
const LeakExit = 99

// Runner runs a package's tests and returns the exit status:
// *testing.M, or a wrapper such as [RunFunc].
type Runner interface {
	Run() int
}

// RunFunc adapts a function to [Runner], e.g. to clean up after m.Run.
type RunFunc func() int

// Run calls f.
func (f RunFunc) Run() int { return f() }

// Main is the body of a TestMain: it runs [NestMain] and the entry
// points, then the tests of m with the leak checks of [Checked], and exits
// with their status.
//
// Each entry point is a re-exec entry such as userns.HelperMain: it
// returns at once unless the test binary was started as its helper, and
// otherwise serves as that helper and exits. They run first, so a helper
// never runs the tests. (testutil does not import userns itself: the
// in-package tests of userns use testutil, and that would be a cycle.)
func Main(m Runner, entries ...func()) {
	NestMain()
	for _, e := range entries {
		e()
	}
	os.Exit(Checked(m).Run())
}

// Checked returns a [Runner] that runs m and checks for leaks: it counts
// the entries of /proc/self/fd and lists the child processes of every
// thread (/proc/self/task/*/children) before and after m.Run. When the
// tests passed but left more descriptors open, or children that were
// never reaped, it prints what leaked to stderr and returns [LeakExit].
// When the tests failed it prints the leaks and keeps their status.
// Use it directly with runners that call Run themselves, as
// testscript.Main does.
func Checked(m Runner) Runner {
	return RunFunc(func() int {
		// The runtime's netpoller opens an epoll fd and an eventfd on
		// first use (os/exec pipes, timers on files): start it before
		// counting, so the first test to use it is not blamed.
		if r, w, err := os.Pipe(); err == nil {
			r.Close()
			w.Close()
		}
		fds, kids := openFDs(), children()
		code := m.Run()
		leaks := leaked(fds, openFDs(), kids, children())
		if len(leaks) == 0 {
			return code
		}
		fmt.Fprintf(os.Stderr, "testutil: the tests leaked:\n\t%s\n", strings.Join(leaks, "\n\t"))
		if code == 0 {
			code = LeakExit
		}
		return code
	})
}

// leaked describes what the tests left: the descriptors beyond the count
// before them (those not open before, or open on something else) and the
// children that were not there before.
func leaked(fdsBefore, fdsAfter, kidsBefore, kidsAfter map[int]string) []string {
	var out []string
	if len(fdsAfter) > len(fdsBefore) {
		out = append(out, fmt.Sprintf("%d open file descriptors before the tests, %d after", len(fdsBefore), len(fdsAfter)))
		for _, fd := range sortedKeys(fdsAfter) {
			if t, ok := fdsBefore[fd]; !ok || t != fdsAfter[fd] {
				out = append(out, fmt.Sprintf("fd %d -> %s", fd, fdsAfter[fd]))
			}
		}
	}
	for _, pid := range sortedKeys(kidsAfter) {
		if _, ok := kidsBefore[pid]; !ok {
			out = append(out, fmt.Sprintf("child process %d not reaped: %s", pid, kidsAfter[pid]))
		}
	}
	return out
}

func sortedKeys(m map[int]string) []int {
	keys := make([]int, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// openFDs maps the open descriptors of the process to their targets,
// without the descriptor that reads /proc/self/fd.
func openFDs() map[int]string {
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil
	}
	self := int(d.Fd())
	fds := map[int]string{}
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd == self {
			continue
		}
		t, err := os.Readlink(filepath.Join("/proc/self/fd", n))
		if err != nil {
			t = "?"
		}
		fds[fd] = t
	}
	return fds
}

// children maps the pids of the process's children (of all its threads:
// a child belongs to the thread that forked it) to their command lines.
// An exited child that was not waited for is still listed, as a zombie.
func children() map[int]string {
	files, _ := filepath.Glob("/proc/self/task/*/children")
	kids := map[int]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(s)
			if err != nil {
				continue
			}
			kids[pid] = describeProcess(pid)
		}
	}
	return kids
}

func describeProcess(pid int) string {
	dir := "/proc/" + strconv.Itoa(pid)
	cmdline, _ := os.ReadFile(dir + "/cmdline")
	desc := strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))
	if desc == "" {
		comm, _ := os.ReadFile(dir + "/comm")
		desc = "[" + strings.TrimSpace(string(comm)) + "]"
	}
	// stat: "pid (comm) S ...": the state follows the last ')'.
	if st, err := os.ReadFile(dir + "/stat"); err == nil {
		if i := strings.LastIndexByte(string(st), ')'); i >= 0 && i+2 < len(st) && st[i+2] == 'Z' {
			desc += " (zombie)"
		}
	}
	return desc
}
