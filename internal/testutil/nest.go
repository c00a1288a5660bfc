package testutil

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Nested user namespaces for the tests: the test binary, re-executed with
// these variables set, serves as the process of each level (see NestMain).
const (
	nestEnv     = "NSCAP_TEST_NEST"       // maps still to create below, ";" separated
	nestLvlEnv  = "NSCAP_TEST_NEST_LEVEL" // 1-based level of this process
	nestExitEnv = "NSCAP_TEST_NEST_EXIT"  // level whose process exits once its child runs
)

// Nest builds a chain of nested user namespaces with the given uid (and
// gid) maps, each INSIDE:OUTSIDE:COUNT[,...] relative to the previous
// level, one process of the test binary in each, as that namespace's root,
// and returns their pids, outermost first. The process of level exitLevel
// (1-based; 0 for none) exits once its child runs, leaving its namespace
// without a process. Cleanup ends and reaps them all. The package's
// TestMain must call [NestMain] ([Main] does).
func Nest(tb testing.TB, maps []string, exitLevel int) []int {
	tb.Helper()
	RequireRoot(tb)
	rr, rw, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	sr, sw, err := os.Pipe()
	if err != nil {
		tb.Fatal(err)
	}
	cmd, err := nestCommand(maps[0], maps[1:], 1, strconv.Itoa(exitLevel), rw, sr)
	if err == nil {
		err = cmd.Start()
	}
	rw.Close()
	sr.Close()
	if err != nil {
		rr.Close()
		sw.Close()
		tb.Fatal(err)
	}
	pids := make([]int, len(maps))
	tb.Cleanup(func() {
		sw.Close()
		if exitLevel != 1 {
			_ = cmd.Wait() // it exits on stdin EOF; its status is not the test's
		}
		// Wait for the orphaned levels too: they exit on stdin EOF.
		for _, p := range pids {
			for i := 0; p > 0 && i < 500; i++ {
				if err := syscall.Kill(p, 0); err != nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(rr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		rr.Close()
	}()
	timeout := time.After(20 * time.Second)
	for got := 0; got < len(maps); {
		select {
		case l, ok := <-lines:
			if !ok {
				tb.Fatalf("nested namespaces: reporter closed after %d levels", got)
			}
			var lvl, pid int
			if _, err := fmt.Sscanf(l, "%d %d", &lvl, &pid); err != nil || lvl < 1 || lvl > len(maps) {
				tb.Fatalf("nested namespaces: %s", l)
			}
			pids[lvl-1] = pid
			got++
		case <-timeout:
			tb.Fatal("nested namespaces: timeout")
		}
	}
	if exitLevel == 1 {
		// Reap it: a zombie still shows its user namespace in /proc.
		waitErr := cmd.Wait()
		tb.Logf("level 1 exited: %v", waitErr)
	}
	if exitLevel > 0 {
		// Wait until the exiting level is gone.
		for range 500 {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d/ns/user", pids[exitLevel-1])); err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return pids
}

// NestMain serves as the process of a level of [Nest] when the test binary
// was re-executed as one (and then exits); otherwise it returns at once.
func NestMain() {
	spec, ok := os.LookupEnv(nestEnv)
	if !ok {
		return
	}
	os.Exit(nestMain(spec))
}

func nestMain(spec string) int {
	report := os.NewFile(3, "report")
	level := os.Getenv(nestLvlEnv)
	exitLevel := os.Getenv(nestExitEnv)
	fmt.Fprintf(report, "%s %d\n", level, os.Getpid())
	var child *exec.Cmd
	if spec != "" {
		maps := strings.Split(spec, ";")
		lvl, _ := strconv.Atoi(level)
		cmd, err := nestCommand(maps[0], maps[1:], lvl+1, exitLevel, report, os.Stdin)
		if err == nil {
			if exitLevel == level {
				// Our child must outlive us: no parent-death signal.
				cmd.SysProcAttr.Pdeathsig = 0
			}
			err = cmd.Start()
		}
		if err != nil {
			fmt.Fprintf(report, "error level %s: %v\n", level, err)
			return 1
		}
		child = cmd
	}
	if exitLevel == level {
		return 0
	}
	b := make([]byte, 1)
	for {
		if n, err := os.Stdin.Read(b); n == 0 || err != nil {
			break
		}
	}
	if child != nil {
		_ = child.Wait() // it exits on stdin EOF, as this level does
	}
	return 0
}

// nestCommand returns a command that runs the test binary in a new user
// namespace with uid and gid map m; the process reports "LEVEL PID" on fd
// 3 (report), creates the namespaces of rest below itself, and lives
// until its stdin closes.
func nestCommand(m string, rest []string, level int, exitLevel string, report, stdin *os.File) (*exec.Cmd, error) {
	ids, err := idMappings(m)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), nestEnv+"="+strings.Join(rest, ";"), nestExitEnv+"="+exitLevel,
		nestLvlEnv+"="+strconv.Itoa(level))
	cmd.ExtraFiles = []*os.File{report}
	cmd.Stdin = stdin
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER,
		UidMappings:                ids,
		GidMappings:                ids,
		GidMappingsEnableSetgroups: true,
		Pdeathsig:                  syscall.SIGKILL,
		// Become uid/gid 0 of the new namespace: the caller's kgid may
		// be unmapped there, and a process whose gid is unmapped cannot
		// create a child namespace (EPERM).
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
	}
	return cmd, nil
}

// idMappings parses a map written INSIDE:OUTSIDE:COUNT[,...]. (testutil
// cannot use userns.ParseMap: the in-package tests of userns import
// testutil.)
func idMappings(m string) ([]syscall.SysProcIDMap, error) {
	var ids []syscall.SysProcIDMap
	for ext := range strings.SplitSeq(m, ",") {
		var in, out, n int
		if _, err := fmt.Sscanf(ext, "%d:%d:%d", &in, &out, &n); err != nil || n <= 0 {
			return nil, fmt.Errorf("nested namespace map %q: want INSIDE:OUTSIDE:COUNT[,...]", m)
		}
		ids = append(ids, syscall.SysProcIDMap{ContainerID: in, HostID: out, Size: n})
	}
	return ids, nil
}
