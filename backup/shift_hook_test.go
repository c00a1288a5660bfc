package backup

import (
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"github.com/nscap/nscap/internal/shifter"
)

// shiftCrashEnv kills a shift process (see TestShiftKill) with SIGKILL
// right after its Nth chown of an inode whose caps or setuid bits the
// kernel cleared: in the window the journal covers.
const shiftCrashEnv = "NSCAP_SHIFT_CRASH_AT"

// installShiftCrashHook installs the hook NSCAP_SHIFT_CRASH_AT asks for.
func installShiftCrashHook() {
	n, err := strconv.Atoi(os.Getenv(shiftCrashEnv))
	if err != nil || n <= 0 {
		return
	}
	var seen atomic.Int64
	shifter.TestHookChowned = func(string) {
		if seen.Add(1) == int64(n) {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // the signal is on its way
		}
	}
}
