package fcaps

import (
	"bufio"
	"io"
	"strconv"
	"strings"

	"github.com/nscap/nscap/userns"
)

// MapSource says where the container uid map of an audit came from.
type MapSource string

// Map sources, from the most to the least certain.
const (
	// MapGiven: given by the caller (--uidmap).
	MapGiven MapSource = "given"
	// MapOCIConfig: linux.uidMappings of an OCI runtime config.json (the
	// bundle's, beside the rootfs, or --oci-config).
	MapOCIConfig MapSource = "oci-config"
	// MapLiveNamespace: a live user namespace whose root owns the rootfs's
	// top directory.
	MapLiveNamespace MapSource = "live-namespace"
	// MapRootfsOwner: guessed from the owner of the rootfs's top
	// directory and of its etc/passwd; its size from etc/passwd.
	MapRootfsOwner MapSource = "rootfs-owner"
	// MapNone: no container map (a host tree, or nothing to go on).
	MapNone MapSource = "none"
	// MapImage: a container image, whose layers hold container ids: no
	// map is needed.
	MapImage MapSource = "image"
)

// MapChoice is the container uid map an audit of one root uses, and why.
type MapChoice struct {
	Source MapSource  `json:"source"`
	UIDMap userns.Map `json:"uid_map"`
	GIDMap userns.Map `json:"gid_map"`
	// Guessed says that findings depending on the map are capped at
	// [SeverityLow] (see [AuditOptions].MapGuessed).
	Guessed bool `json:"guessed"`
	// Reason explains the choice in a sentence.
	Reason string `json:"reason"`
}

// Apply returns opts with the choice's maps.
func (c MapChoice) Apply(opts AuditOptions) AuditOptions {
	opts.UIDMap, opts.GIDMap = c.UIDMap, c.GIDMap
	opts.MapGuessed = c.Guessed
	opts.MapReason = ""
	if !c.UIDMap.IsZero() && c.Source != MapGiven {
		opts.MapReason = "in a container rootfs with uid map " + c.UIDMap.String() + " (" + string(c.Source) + ")"
	}
	return opts
}

// String describes the choice for a summary line.
func (c MapChoice) String() string {
	if c.Source == MapImage {
		return c.Reason
	}
	if c.UIDMap.IsZero() {
		return "no container uid map: " + c.Reason
	}
	s := "uid map " + c.UIDMap.String()
	if !c.GIDMap.Equal(c.UIDMap) {
		s += ", gid map " + c.GIDMap.String()
	}
	if c.Guessed {
		return s + ", guessed: " + c.Reason + " (findings that depend on it are at most low; give --uidmap to confirm)"
	}
	return s + ": " + c.Reason
}

// passwdMaxID returns the highest uid and gid in an /etc/passwd file,
// ignoring lines it cannot read.
func passwdMaxID(r io.Reader) (maxUID, maxGID uint32, ok bool) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Split(sc.Text(), ":")
		if len(f) < 4 {
			continue
		}
		u, err1 := strconv.ParseUint(f[2], 10, 32)
		g, err2 := strconv.ParseUint(f[3], 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		maxUID, maxGID, ok = max(maxUID, uint32(u)), max(maxGID, uint32(g)), true
	}
	return maxUID, maxGID, ok
}

// shiftedMap returns the map 0:host:count, count at least 65536 (the
// usual container size) and enough for maxID, within the uid space.
func shiftedMap(host, maxID uint32) (userns.Map, error) {
	count := max(uint64(65536), uint64(maxID)+1)
	count = min(count, 1<<32-1-uint64(host))
	return userns.NewMap([]userns.Extent{{NsID: 0, HostID: host, Count: uint32(count)}})
}
