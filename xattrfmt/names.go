package xattrfmt

import (
	"strconv"
	"strings"
)

// LastCap is the highest capability the kernel knows today (CAP_LAST_CAP,
// CAP_CHECKPOINT_RESTORE). Bits above it up to 63 are valid in an xattr
// and kept verbatim, but have no name.
const LastCap = 40 // CAP_CHECKPOINT_RESTORE

// KnownCaps is the set of every named capability, 0 through [LastCap]. It is
// what the text form means by "all" (libcap's cap_max_bits on this kernel).
const KnownCaps CapSet = 1<<(LastCap+1) - 1

// capNames are libcap's names, indexed by bit (include/uapi/linux/capability.h).
var capNames = [LastCap + 1]string{
	"cap_chown", "cap_dac_override", "cap_dac_read_search", "cap_fowner",
	"cap_fsetid", "cap_kill", "cap_setgid", "cap_setuid", "cap_setpcap",
	"cap_linux_immutable", "cap_net_bind_service", "cap_net_broadcast",
	"cap_net_admin", "cap_net_raw", "cap_ipc_lock", "cap_ipc_owner",
	"cap_sys_module", "cap_sys_rawio", "cap_sys_chroot", "cap_sys_ptrace",
	"cap_sys_pacct", "cap_sys_admin", "cap_sys_boot", "cap_sys_nice",
	"cap_sys_resource", "cap_sys_time", "cap_sys_tty_config", "cap_mknod",
	"cap_lease", "cap_audit_write", "cap_audit_control", "cap_setfcap",
	"cap_mac_override", "cap_mac_admin", "cap_syslog", "cap_wake_alarm",
	"cap_block_suspend", "cap_audit_read", "cap_perfmon", "cap_bpf",
	"cap_checkpoint_restore",
}

var capByName = func() map[string]int {
	m := make(map[string]int, len(capNames))
	for i, n := range capNames {
		m[n] = i
	}
	return m
}()

// Name returns libcap's name of capability bit, such as "cap_net_raw" for
// 13. A bit without a name (above [LastCap], or outside 0-63) is returned
// as its decimal number, as libcap's cap_to_name does.
func Name(bit int) string {
	if bit >= 0 && bit <= LastCap {
		return capNames[bit]
	}
	return strconv.Itoa(bit)
}

// Lookup returns the bit of a capability named as cap_from_text accepts
// it: a libcap name in any letter case ("cap_net_raw", "CAP_NET_RAW") or a
// number below 64 in C strtoul base-0 notation ("13", "0xd", "015"). The
// whole string must be the name; "all" is not a single capability.
func Lookup(name string) (int, bool) {
	if name == "" {
		return 0, false
	}
	bit, end, ok := lookupName(name, 0)
	if !ok || end != len(name) {
		return 0, false
	}
	return bit, true
}

// lookupName mirrors libcap's lookupname: it reads a capability name or
// number starting at s[i] and returns the bit and the index just after it.
// Like the gperf lookup in libcap builds, a name spans letters and '_' and
// is matched without regard to case.
func lookupName(s string, i int) (bit, end int, ok bool) {
	if i >= len(s) {
		return 0, i, false
	}
	if isDigit(s[i]) {
		n, j := strtoul0(s, i)
		if n >= 64 {
			return 0, j, false
		}
		return int(n), j, true
	}
	j := i
	for j < len(s) && (isAlpha(s[j]) || s[j] == '_') {
		j++
	}
	b, found := capByName[strings.ToLower(s[i:j])]
	if !found {
		return 0, i, false
	}
	return b, j, true
}

// strtoul0 parses an unsigned number at s[i] the way C strtoul(s, &end, 0)
// does: "0x" followed by a hex digit starts hex, a leading 0 octal, else
// decimal. Values saturate instead of overflowing; callers only care
// whether they are below 64.
func strtoul0(s string, i int) (uint64, int) {
	base := uint64(10)
	j := i
	if s[j] == '0' {
		if j+2 < len(s) && (s[j+1] == 'x' || s[j+1] == 'X') && digitVal(s[j+2]) < 16 {
			base = 16
			j += 2
		} else {
			base = 8
		}
	}
	var n uint64
	for ; j < len(s); j++ {
		d := digitVal(s[j])
		if d >= base {
			break
		}
		if n < 1<<32 {
			n = n*base + d
		}
	}
	return n, j
}

func digitVal(c byte) uint64 {
	switch {
	case c >= '0' && c <= '9':
		return uint64(c - '0')
	case c >= 'a' && c <= 'z':
		return uint64(c-'a') + 10
	case c >= 'A' && c <= 'Z':
		return uint64(c-'A') + 10
	}
	return 99
}

// Has reports whether capability bit is in the set. Bits outside 0-63
// are never in it.
func (s CapSet) Has(bit int) bool {
	return bit >= 0 && bit < 64 && s&(1<<uint(bit)) != 0
}

// String lists the capabilities of the set in ascending order, comma
// separated, by libcap name, with bits above [LastCap] as decimal numbers:
// "cap_net_admin,cap_net_raw,41". The empty set is "". Each element is
// accepted by [Lookup], so the list can be used as the names part of a
// text clause.
func (s CapSet) String() string {
	var b strings.Builder
	for bit := 0; bit < 64; bit++ {
		if !s.Has(bit) {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(Name(bit))
	}
	return b.String()
}

// C locale character classes, as libcap's parser sees bytes.
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isAlpha(c) || isDigit(c) }
func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }
