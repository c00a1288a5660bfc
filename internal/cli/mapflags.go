package cli

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/nscap/nscap/userns"
)

// mapFlags are the flags naming a container's id maps: --uidmap and
// --gidmap (podman's INSIDE:OUTSIDE:COUNT[,...], repeatable), --pid or
// --oci-config. backup, restore and verify share them.
type mapFlags struct {
	UIDMap    string // --uidmap values joined with ","
	GIDMap    string // --gidmap values joined with ","
	PID       int    // --pid
	OCIConfig string // --oci-config

	uidMaps, gidMaps []string
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

// validate checks the flags (usage errors only) and joins the map values.
func (m *mapFlags) validate(fl *pflag.FlagSet) error {
	n := 0
	for _, name := range []string{"uidmap", "pid", "oci-config"} {
		if fl.Changed(name) {
			n++
		}
	}
	if n > 1 {
		return flagErrorf("--uidmap, --pid and --oci-config exclude each other")
	}
	if fl.Changed("gidmap") && !fl.Changed("uidmap") {
		return flagErrorf("--gidmap needs --uidmap")
	}
	if fl.Changed("pid") && m.PID <= 0 {
		return flagErrorf("--pid %d: want a positive process id", m.PID)
	}
	m.UIDMap, m.GIDMap = strings.Join(m.uidMaps, ","), strings.Join(m.gidMaps, ",")
	return checkMapSyntax("--uidmap", m.UIDMap, "--gidmap", m.GIDMap)
}

// checkMapSyntax parses each non-empty map text of the flag/text pairs and
// returns a usage error naming the first that is malformed.
func checkMapSyntax(flagText ...string) error {
	for i := 0; i+1 < len(flagText); i += 2 {
		flag, text := flagText[i], flagText[i+1]
		if text == "" {
			continue
		}
		if _, err := userns.ParseMap(text); err != nil {
			return flagErrorf("%s %s: %w", flag, text, err)
		}
	}
	return nil
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
			return uid, gid, fmt.Errorf("read the maps of pid %d: %w", m.PID, err)
		}
	case m.OCIConfig != "":
		f, err := os.Open(m.OCIConfig)
		if err != nil {
			return uid, gid, err
		}
		defer f.Close()
		if uid, gid, err = userns.ParseOCIConfig(f); err != nil {
			return uid, gid, fmt.Errorf("read the maps of %s: %w", m.OCIConfig, err)
		}
	case m.UIDMap != "":
		if uid, err = userns.ParseMap(m.UIDMap); err != nil {
			return uid, gid, err
		}
		gid = uid
		if m.GIDMap != "" {
			if gid, err = userns.ParseMap(m.GIDMap); err != nil {
				return uid, gid, err
			}
		}
	}
	return uid, gid, nil
}
