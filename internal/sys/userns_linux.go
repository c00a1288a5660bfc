package sys

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Capability bits of the effective set (linux/capability.h).
const (
	CapChown   = 1 << unix.CAP_CHOWN   // CAP_CHOWN
	CapSetfcap = 1 << unix.CAP_SETFCAP // CAP_SETFCAP
)

// EffectiveCaps returns the effective capability set of the calling
// process, the CapEff line of /proc/self/status (proc(5)), as a bit mask
// (bit n is capability n). ok is false when the line cannot be read.
func EffectiveCaps() (caps uint64, ok bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, found := strings.CutPrefix(l, "CapEff:"); found {
			eff, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return eff, err == nil
		}
	}
	return 0, false
}

// NSOwnerUID is ioctl(fd, NS_GET_OWNER_UID) on a user namespace
// descriptor: the effective uid of the namespace's creator in the
// caller's namespace (Linux 4.11+, ioctl_ns(2)).
func NSOwnerUID(fd int) (uint32, error) { return unix.IoctlGetUint32(fd, unix.NS_GET_OWNER_UID) }

// NSID is ioctl(fd, NS_GET_ID): the namespace's 64-bit id (Linux 6.12+).
func NSID(fd int) (uint64, error) { return unix.IoctlGetUint64(fd, unix.NS_GET_ID) }

// NSParent is ioctl(fd, NS_GET_PARENT): a new descriptor of the parent
// namespace (Linux 4.9+). It fails with EPERM for the initial namespace
// and outside the caller's scope.
func NSParent(fd int) (int, error) { return unix.IoctlRetInt(fd, unix.NS_GET_PARENT) }

// SetCloseOnExec sets FD_CLOEXEC on fd (fcntl(2) F_SETFD).
func SetCloseOnExec(fd int) error {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
	return err
}
