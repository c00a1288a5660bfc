package cli

import (
	"os"
	"strconv"
	"strings"

	"github.com/nscap/nscap/userns"
)

// useHelper says whether a restore or verify with these target maps goes
// through a helper user namespace: always, or with auto when there are
// target maps and the caller lacks privilege over owners and caps.
func useHelper(mode string, uidMap userns.Map) bool {
	switch mode {
	case "always":
		return true
	case "auto":
		return !uidMap.IsZero() && !privileged()
	}
	return false
}

// privileged reports whether the caller may set any owner and write any
// capability: CAP_CHOWN and CAP_SETFCAP in its effective set (which root
// has unless it dropped them).
func privileged() bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return os.Geteuid() == 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "CapEff:"); ok {
			eff, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			const want = 1<<0 | 1<<31 // CAP_CHOWN, CAP_SETFCAP
			return err == nil && eff&want == want
		}
	}
	return os.Geteuid() == 0
}
