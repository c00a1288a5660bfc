package testutil

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BinfmtNS starts a process in a new user namespace (uid and gid map
// 0:hostBase:65536) and mount namespace that mounts its own binfmt_misc
// instance at /proc/sys/fs/binfmt_misc (Linux 6.7, the sandboxed
// binfmt_misc mounts) and registers regs there (each a line of the
// register file's syntax, ":NAME:M:OFFSET:MAGIC:MASK:INTERPRETER:FLAGS",
// with \xHH escapes, which the kernel decodes). It returns the pid of the
// process, which lives until cleanup. When the kernel refuses the mount
// the test is skipped with the kernel's reason.
func BinfmtNS(tb testing.TB, hostBase int, regs []string) int {
	tb.Helper()
	RequireRoot(tb)
	RequireUserNS(tb)
	// The registrations come on stdin: the namespace's root is no root
	// for the host's files (the test's temporary directories).
	script := `set -e
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>&1 || { echo "mount-failed"; exit 0; }
while IFS= read -r line; do printf '%s' "$line" > /proc/sys/fs/binfmt_misc/register; done
echo ready
exec sleep 600 </dev/null`
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Stdin = strings.NewReader(strings.Join(regs, "\n") + "\n")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	NoErr(tb, err)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostBase, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostBase, Size: 65536}},
		Credential:  &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true},
		Pdeathsig:   syscall.SIGKILL,
	}
	NoErr(tb, cmd.Start())
	tb.Cleanup(func() {
		_ = cmd.Process.Kill() // it may have exited already
		_ = cmd.Wait()         // killed: the status is the kill
	})
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	var seen []string
	timeout := time.After(20 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			switch {
			case !ok:
				tb.Fatalf("binfmt_misc namespace exited: %q %s", seen, stderr.String())
			case l == "ready":
				return cmd.Process.Pid
			case l == "mount-failed":
				var u syscall.Utsname
				_ = syscall.Uname(&u)
				tb.Skipf("kernel %s cannot mount binfmt_misc in a user namespace (sandboxed instances need Linux 6.7): %s", utsString(u.Release[:]), strings.Join(seen, "; "))
			}
			seen = append(seen, l)
		case <-timeout:
			tb.Fatalf("binfmt_misc namespace: timeout (%q %s)", seen, stderr.String())
		}
	}
}

func utsString(b []int8) string {
	var s []byte
	for _, c := range b {
		if c == 0 {
			break
		}
		s = append(s, byte(c))
	}
	return string(s)
}

// ELFHeader returns the first 64 bytes of a little-endian 64-bit ELF
// executable for machine (e_machine): enough for binfmt_misc and for the
// audit to tell the machine; no emulator is needed.
func ELFHeader(machine uint16) []byte {
	h := make([]byte, 64)
	copy(h, "\x7fELF\x02\x01\x01")
	h[16], h[17] = 2, 0 // ET_EXEC
	h[18], h[19] = byte(machine), byte(machine>>8)
	h[20] = 1 // EV_CURRENT
	return h
}

// BinfmtMagic returns the magic and mask, in the register file's \xHH
// syntax, matching [ELFHeader](machine), as qemu-user registers them.
func BinfmtMagic(machine uint16) (magic, mask string) {
	esc := func(b []byte) string {
		var s strings.Builder
		for _, c := range b {
			fmt.Fprintf(&s, "\\x%02x", c)
		}
		return s.String()
	}
	h := ELFHeader(machine)[:20]
	m := bytes.Repeat([]byte{0xff}, 20)
	m[7] = 0     // EI_OSABI
	m[16] = 0xfe // ET_EXEC or ET_DYN
	for i := 8; i < 16; i++ {
		m[i] = 0
	}
	return esc(h), esc(m)
}
