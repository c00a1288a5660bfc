package cli

import (
	"strings"

	"github.com/spf13/pflag"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/userns"
)

// targetMapFlags are the map flags restore and verify share: the target
// maps, the source maps of an archive of raw host ids, and --host-scope.
type targetMapFlags struct {
	Target       mapFlags
	SourceUIDMap string // --source-uidmap
	SourceGIDMap string // --source-gidmap
	HostScope    bool   // --host-scope
	ForeignCaps  backup.ForeignCaps

	foreign string // --foreign-caps

	srcUIDMaps, srcGIDMaps []string
	srcUID, srcGID         userns.Map // parsed by validateMaps
}

func (m *targetMapFlags) register(fl *pflag.FlagSet) {
	m.Target.register(fl,
		"uid map of the target container (`MAP`: INSIDE:OUTSIDE:COUNT,...)",
		"gid map of the target container (`MAP`; default: the uid map)",
		"the target container is the user namespace of process `PID` (its maps)",
		"read the target maps from the OCI runtime config `FILE`")
	fl.StringArrayVar(&m.srcUIDMaps, "source-uidmap", nil, "uid map of the container an archive of raw host ids was made from (`MAP`)")
	fl.StringArrayVar(&m.srcGIDMaps, "source-gidmap", nil, "gid map of that container (`MAP`; default: the source uid map)")
	fl.StringVar(&m.foreign, "foreign-caps", "fail", "caps the target cannot hold (host-scoped in the archive, or a rootid outside the target map): fail, skip or host")
	fl.BoolVar(&m.HostScope, "host-scope", false, "allow host-scoped caps: a namespace-relative archive without target maps (its caps become host-scoped), and caps the archive kept host-scoped, written verbatim")
}

// validate checks the map flags and --helper (usage errors only).
func (m *targetMapFlags) validate(fl *pflag.FlagSet, helper fcaps.HelperMode) error {
	if err := m.validateMaps(fl); err != nil {
		return err
	}
	p, err := backup.ParseForeignCaps(m.foreign)
	if err != nil {
		return flagErrorf("--foreign-caps: %w", err)
	}
	m.ForeignCaps = p
	return m.validateHelper(fl, helper)
}

// validateMaps checks the map flags.
func (m *targetMapFlags) validateMaps(fl *pflag.FlagSet) error {
	if err := m.Target.validate(fl); err != nil {
		return err
	}
	if fl.Changed("source-gidmap") && !fl.Changed("source-uidmap") {
		return flagErrorf("--source-gidmap needs --source-uidmap")
	}
	m.SourceUIDMap, m.SourceGIDMap = strings.Join(m.srcUIDMaps, ","), strings.Join(m.srcGIDMaps, ",")
	var err error
	if m.srcUID, err = parseMapFlag("--source-uidmap", m.SourceUIDMap); err != nil {
		return err
	}
	m.srcGID, err = parseMapFlag("--source-gidmap", m.SourceGIDMap)
	return err
}

// validateHelper checks --helper against the map flags: a helper needs
// target maps.
func (m *targetMapFlags) validateHelper(_ *pflag.FlagSet, helper fcaps.HelperMode) error {
	if helper == fcaps.HelperAlways && !m.Target.given() {
		return flagErrorf("--helper always needs target maps (--uidmap, --pid or --oci-config)")
	}
	return nil
}

// resolve returns the target and source maps.
func (m *targetMapFlags) resolve() (uid, gid, srcUID, srcGID userns.Map, err error) {
	uid, gid, err = m.Target.resolve()
	return uid, gid, m.srcUID, m.srcGID, err
}
