package userns

import (
	"encoding/json"
	"fmt"
	"io"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ParseOCIConfig reads an OCI runtime config.json and returns the maps of
// linux.uidMappings and linux.gidMappings (containerID, hostID, size),
// each validated as by [NewMap]. A config without a linux section or
// without mappings gives zero Maps and a nil error: the container then
// shares the host's user namespace.
func ParseOCIConfig(r io.Reader) (uid, gid Map, err error) {
	var spec specs.Spec
	if err := json.NewDecoder(r).Decode(&spec); err != nil {
		return Map{}, Map{}, fmt.Errorf("decode OCI config: %w", err)
	}
	if spec.Linux == nil {
		return Map{}, Map{}, nil
	}
	if uid, err = FromOCI(spec.Linux.UIDMappings); err != nil {
		return Map{}, Map{}, fmt.Errorf("OCI config linux.uidMappings: %w", err)
	}
	if gid, err = FromOCI(spec.Linux.GIDMappings); err != nil {
		return Map{}, Map{}, fmt.Errorf("OCI config linux.gidMappings: %w", err)
	}
	return uid, gid, nil
}

// FromOCI converts OCI id mappings to a Map, validated as by [NewMap]. No
// mapping gives the zero Map and a nil error.
func FromOCI(ms []specs.LinuxIDMapping) (Map, error) {
	if len(ms) == 0 {
		return Map{}, nil
	}
	ext := make([]Extent, len(ms))
	for i, m := range ms {
		ext[i] = Extent{NsID: m.ContainerID, HostID: m.HostID, Count: m.Size}
	}
	return NewMap(ext)
}

// OCI converts m to OCI id mappings, in m's order.
func (m Map) OCI() []specs.LinuxIDMapping {
	out := make([]specs.LinuxIDMapping, len(m.extents))
	for i, e := range m.extents {
		out[i] = specs.LinuxIDMapping{ContainerID: e.NsID, HostID: e.HostID, Size: e.Count}
	}
	return out
}
