package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/nscap/nscap/userns"
)

// mapFlags are the flags naming a container's id maps: --uidmap and
// --gidmap (podman's INSIDE:OUTSIDE:COUNT[,...], repeatable), --pid or
// --oci-config. set, remove, backup, restore and verify share them.
type mapFlags struct {
	UIDMap    string // --uidmap values joined with ","
	GIDMap    string // --gidmap values joined with ","
	PID       int    // --pid
	OCIConfig string // --oci-config

	uidMaps, gidMaps []string
	// uid and gid are UIDMap and GIDMap parsed by validate (gid defaults
	// to uid).
	uid, gid userns.Map
	// readMaps reads the maps of a process (nil: userns.ReadMaps).
	readMaps func(pid int) (uid, gid userns.Map, err error)
}

// register adds --uidmap, --gidmap, --pid and --oci-config to fl, with the
// command's usage strings.
func (m *mapFlags) register(fl *pflag.FlagSet, uidUsage, gidUsage, pidUsage, ociUsage string) {
	fl.StringArrayVar(&m.uidMaps, "uidmap", nil, uidUsage)
	fl.StringArrayVar(&m.gidMaps, "gidmap", nil, gidUsage)
	fl.IntVar(&m.PID, "pid", 0, pidUsage)
	fl.StringVar(&m.OCIConfig, "oci-config", "", ociUsage)
}

// given reports whether one of --uidmap, --pid and --oci-config is set.
func (m *mapFlags) given() bool { return m.UIDMap != "" || m.PID != 0 || m.OCIConfig != "" }

// validate checks the flags (usage errors only), joins the map values and
// parses them. The flags named in others (set's "rootid") exclude the map
// flags too.
func (m *mapFlags) validate(fl *pflag.FlagSet, others ...string) error {
	names := append(append([]string{}, others...), "uidmap", "pid", "oci-config")
	n := 0
	for _, name := range names {
		if fl.Changed(name) {
			n++
		}
	}
	if n > 1 {
		for i := range names {
			names[i] = "--" + names[i]
		}
		return flagErrorf("%s and %s exclude each other", strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
	}
	if fl.Changed("gidmap") && !fl.Changed("uidmap") {
		return flagErrorf("--gidmap needs --uidmap")
	}
	if fl.Changed("pid") && m.PID <= 0 {
		return flagErrorf("--pid %d: want a positive process id", m.PID)
	}
	if fl.Changed("oci-config") && m.OCIConfig == "" {
		return flagErrorf("--oci-config: empty file name")
	}
	m.UIDMap, m.GIDMap = strings.Join(m.uidMaps, ","), strings.Join(m.gidMaps, ",")
	var err error
	if m.uid, err = parseMapFlag("--uidmap", m.UIDMap); err != nil {
		return err
	}
	m.gid = m.uid
	if m.GIDMap != "" {
		m.gid, err = parseMapFlag("--gidmap", m.GIDMap)
	}
	return err
}

// parseMapFlag parses the map text of flag; "" is the zero map. A
// malformed map is a usage error naming the flag.
func parseMapFlag(flag, text string) (userns.Map, error) {
	if text == "" {
		return userns.Map{}, nil
	}
	m, err := userns.ParseMap(text)
	if err != nil {
		return m, flagErrorf("%s %s: %w", flag, elide(text), elideInput(err, text))
	}
	return m, nil
}

// resolve returns the maps the flags name: those of process PID, of the OCI
// config, or --uidmap and --gidmap (which defaults to the uid map). Without
// map flags both are zero.
func (m *mapFlags) resolve() (uid, gid userns.Map, err error) {
	switch {
	case m.PID != 0:
		readMaps := m.readMaps
		if readMaps == nil {
			readMaps = userns.ReadMaps
		}
		if uid, gid, err = readMaps(m.PID); err != nil {
			return uid, gid, pidError(m.PID, err)
		}
		return uid, gid, nil
	case m.OCIConfig != "":
		return readOCIMaps(m.OCIConfig)
	}
	return m.uid, m.gid, nil
}

// pidError explains an error about process pid: a process that is gone
// is named as such.
func pidError(pid int, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pid %d: no such process", pid)
	}
	return fmt.Errorf("read the maps of pid %d: %w", pid, err)
}

// sameUserNS reports whether process pid is in the caller's user
// namespace: its maps are then relative to the parent namespace, and the
// ids it sees are the caller's own.
func sameUserNS(pid int) (bool, error) {
	var a, b syscall.Stat_t
	if err := syscall.Stat("/proc/"+strconv.Itoa(pid)+"/ns/user", &a); err != nil {
		return false, pidError(pid, err)
	}
	if err := syscall.Stat("/proc/self/ns/user", &b); err != nil {
		return false, err
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}

// initialUserNSInode is the inode of the initial user namespace
// (PROC_USER_INIT_INO, include/linux/proc_ns.h), fixed since Linux 3.8.
const initialUserNSInode = 0xEFFFFFFD

// pidNS describes the user namespace of a process for set --pid.
type pidNS struct {
	Ref     string // "user:[INODE]", as /proc/PID/ns/user reads
	Self    bool   // the caller's own namespace
	Initial bool   // the initial (host's) namespace
}

// readPIDNS describes the user namespace of process pid (stat of
// /proc/PID/ns/user).
func readPIDNS(pid int) (pidNS, error) {
	var a, b syscall.Stat_t
	if err := syscall.Stat("/proc/"+strconv.Itoa(pid)+"/ns/user", &a); err != nil {
		return pidNS{}, err
	}
	if err := syscall.Stat("/proc/self/ns/user", &b); err != nil {
		return pidNS{}, err
	}
	return pidNS{
		Ref:     "user:[" + strconv.FormatUint(a.Ino, 10) + "]",
		Self:    a.Dev == b.Dev && a.Ino == b.Ino,
		Initial: a.Ino == initialUserNSInode,
	}, nil
}

// checkRootless refuses, for an unprivileged caller whose writes may go
// through a helper user namespace, maps that reach ids the caller does not
// own: its helper maps only its own uid and gid and its subordinate ranges
// (newuidmap(1) refuses the rest), so a map beyond them would be accepted
// here and fail file by file later. The error names the ids the caller
// owns, from the files, not the helper's internal map.
func (m *mapFlags) checkRootless() error {
	if os.Geteuid() == 0 || !m.given() {
		return nil
	}
	uid, gid, err := m.resolve()
	if err != nil {
		return err
	}
	for _, c := range []struct {
		m     userns.Map
		owned userns.OwnedIDs
	}{{uid, userns.CallerUIDs("")}, {gid, userns.CallerGIDs("")}} {
		o := c.owned
		if o.Err != nil && !o.None() {
			return o.Err
		}
		bad := userns.Unowned(c.m, o.Self, o.Ranges)
		if len(bad) == 0 {
			continue
		}
		var ids []string
		for j, r := range bad {
			if j == 3 {
				ids = append(ids, "...")
				break
			}
			ids = append(ids, r.String())
		}
		who := userLabel(o.User, uint32(os.Getuid()))
		owned := fmt.Sprintf("only %s %d (no range for %s in %s)", o.Kind, o.Self, who, o.File)
		if len(o.Ranges) > 0 {
			owned = fmt.Sprintf("%s %d and %s (%s, %s)", o.Kind, o.Self, o.RangesText(), o.File, who)
		}
		return flagErrorf("%s maps host %ss %s that are not yours: you own %s, all that the helper user namespace of an unprivileged user can map",
			m.describe(), o.Kind, strings.Join(ids, ", "), owned)
	}
	return nil
}

// userLabel names the user of a subordinate id file line: "user NAME", or
// "uid N" when it has no name.
func userLabel(name string, id uint32) string {
	if name == "" {
		return fmt.Sprintf("uid %d", id)
	}
	return "user " + name
}

// readOCIMaps reads the uid and gid maps of an OCI runtime config.
func readOCIMaps(path string) (uid, gid userns.Map, err error) {
	f, err := os.Open(path)
	if err != nil {
		return uid, gid, err
	}
	defer f.Close()
	if uid, gid, err = userns.ParseOCIConfig(f); err != nil {
		return uid, gid, fmt.Errorf("read the maps of %s: %w", path, err)
	}
	return uid, gid, nil
}

// describe names the namespace the flags give, for messages: "the user
// namespace of pid 42", "... of config.json", "... of --uidmap MAP".
func (m *mapFlags) describe() string {
	switch {
	case m.PID != 0:
		return fmt.Sprintf("the user namespace of pid %d", m.PID)
	case m.OCIConfig != "":
		return "the user namespace of " + m.OCIConfig
	}
	return "the user namespace of --uidmap " + elide(m.UIDMap)
}
