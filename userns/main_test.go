package userns

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/nscap/nscap/internal/testutil"
)

// TestMain lets the test binary serve as the helper of StartHelper, and as
// the processes of nested namespaces that tests build (nestMain); else it
// runs the tests with testutil's leak checks.
func TestMain(m *testing.M) {
	testutil.Main(m, HelperMain, func() {
		if spec, ok := os.LookupEnv(nestEnv); ok {
			os.Exit(nestMain(spec))
		}
	})
}

// nestEnv holds the maps of the namespaces still to create below the
// current process, ";" separated; nestExitEnv the level (1-based) whose
// process exits as soon as its child started.
const (
	nestEnv     = "NSCAP_USERNS_TEST_NEST"
	nestExitEnv = "NSCAP_USERNS_TEST_NEST_EXIT"
	nestLvlEnv  = "NSCAP_USERNS_TEST_NEST_LEVEL"
)

// nestCommand returns a command that runs the test binary in a new user
// namespace with uid and gid map m; the process reports "LEVEL PID" on fd
// 3 (report), creates the namespaces of rest below itself, and lives
// until its stdin closes.
func nestCommand(m string, rest []string, level int, exitLevel string, report, stdin *os.File) (*exec.Cmd, error) {
	mp, err := ParseMap(m)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), nestEnv+"="+strings.Join(rest, ";"), nestExitEnv+"="+exitLevel, fmt.Sprintf("%s=%d", nestLvlEnv, level))
	cmd.ExtraFiles = []*os.File{report}
	cmd.Stdin = stdin
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 syscall.CLONE_NEWUSER,
		UidMappings:                idMappings(mp),
		GidMappings:                idMappings(mp),
		GidMappingsEnableSetgroups: true,
		Pdeathsig:                  syscall.SIGKILL,
		// Become uid/gid 0 of the new namespace: the caller's kgid may
		// be unmapped there, and a process whose gid is unmapped cannot
		// create a child namespace (EPERM).
		Credential: &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
	}
	return cmd, nil
}

func nestMain(spec string) int {
	report := os.NewFile(3, "report")
	level := os.Getenv(nestLvlEnv)
	fmt.Fprintf(report, "%s %d\n", level, os.Getpid())
	var child *exec.Cmd
	if spec != "" {
		maps := strings.Split(spec, ";")
		var lvl int
		fmt.Sscan(level, &lvl)
		cmd, err := nestCommand(maps[0], maps[1:], lvl+1, os.Getenv(nestExitEnv), report, os.Stdin)
		if err == nil {
			if os.Getenv(nestExitEnv) == level {
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
	if os.Getenv(nestExitEnv) == level {
		return 0
	}
	b := make([]byte, 1)
	for {
		if n, err := os.Stdin.Read(b); n == 0 || err != nil {
			break
		}
	}
	if child != nil {
		child.Wait()
	}
	return 0
}
