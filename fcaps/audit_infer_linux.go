package fcaps

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/userns"
)

// InferOptions configure [InferMap].
type InferOptions struct {
	// OCIConfig is an OCI runtime config.json to take the maps from;
	// empty: the bundle's config.json beside the rootfs, when there is
	// one whose root.path is the rootfs.
	OCIConfig string
	// Namespaces are the live user namespaces ([userns.Tree]), nil when
	// unknown.
	Namespaces []*userns.Node
}

// InferMap works out the container uid and gid maps of the tree at root
// the way a user would, reading only the tree and the files named:
//
//  1. the OCI runtime config (opts.OCIConfig, or the config.json of the
//     bundle whose root.path is root): its linux.uidMappings;
//  2. the owner U of root's top directory: 0 means a host tree, no map;
//  3. a live user namespace whose root is U: its maps;
//  4. etc/passwd inside root, owned by U too: the map 0:U:N, N from the
//     highest id in it (at least 65536). This one is a guess: the audit
//     caps the findings that depend on it at [SeverityLow].
//
// Subordinate ranges (/etc/subuid) are never used to find the root: on a
// host whose root owns 100000:1000000 (LXD, Incus), a rootfs at 200000 is
// not a container whose root is 100000. An error is returned only for an
// unreadable opts.OCIConfig or root.
func InferMap(root string, opts InferOptions) (MapChoice, error) {
	if opts.OCIConfig != "" {
		c, ok, err := readOCIConfig(opts.OCIConfig)
		if err != nil {
			return MapChoice{}, err
		}
		if !ok {
			return MapChoice{}, &fs.PathError{Op: "open", Path: opts.OCIConfig, Err: fs.ErrNotExist}
		}
		return ociChoice(opts.OCIConfig, c)
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return MapChoice{}, err
	}
	bundleConfig := filepath.Join(filepath.Dir(abs), "config.json")
	if c, ok, err := readOCIConfig(bundleConfig); err == nil && ok && c.Root != nil &&
		filepath.Clean(filepath.Join(filepath.Dir(abs), c.Root.Path)) == abs {
		return ociChoice(bundleConfig, c)
	}

	st, err := sys.Lstat(root)
	if err != nil {
		return MapChoice{}, &fs.PathError{Op: "lstat", Path: root, Err: err}
	}
	if sys.ModeType(st.Mode) != fs.ModeDir {
		return MapChoice{Source: MapNone, Reason: "not a directory"}, nil
	}
	u, g := st.Uid, st.Gid
	if u == 0 {
		return MapChoice{Source: MapNone, Reason: "the top directory is owned by uid 0 (a host tree; give --uidmap for a container rootfs)"}, nil
	}
	if live := liveWithRoot(opts.Namespaces, u); len(live) > 0 {
		n := live[0]
		gid := n.GIDMap
		if gid.IsZero() {
			gid = n.UIDMap
		}
		pid := ""
		if len(n.PIDs) > 0 {
			pid = fmt.Sprintf(" (pid %d)", n.PIDs[0])
		}
		return MapChoice{
			Source: MapLiveNamespace, UIDMap: n.UIDMap, GIDMap: gid,
			Reason: fmt.Sprintf("the top directory is owned by uid %d, the root of the live user namespace %s%s", u, n.NSRef, pid),
		}, nil
	}
	maxUID, maxGID, pw, err := readPasswd(root, u)
	if err != nil {
		return MapChoice{Source: MapNone, Reason: fmt.Sprintf("the top directory is owned by uid %d, but %v: not taken for a container rootfs", u, err)}, nil
	}
	um, err := shiftedMap(u, maxUID)
	if err != nil {
		return MapChoice{}, err
	}
	gm, err := shiftedMap(g, maxGID)
	if err != nil {
		return MapChoice{}, err
	}
	why := fmt.Sprintf("the top directory and etc/passwd are owned by uid %d, taken for the container root (no live user namespace has that root)", u)
	if pw {
		why += fmt.Sprintf("; the highest uid in etc/passwd is %d", maxUID)
	}
	return MapChoice{Source: MapRootfsOwner, UIDMap: um, GIDMap: gm, Guessed: true, Reason: why}, nil
}

// liveWithRoot returns the live namespaces (but the caller's) whose root
// is uid and whose maps are known.
func liveWithRoot(nodes []*userns.Node, uid uint32) []*userns.Node {
	var out []*userns.Node
	var walk func(n *userns.Node)
	walk = func(n *userns.Node) {
		if !n.Self && n.RootVisible && n.RootID == uid && n.MapErr == nil && !n.UIDMap.IsZero() {
			out = append(out, n)
		}
		for _, c := range n.Children {
			walk(c)
		}
	}
	for _, n := range nodes {
		walk(n)
	}
	return out
}

// readPasswd reads root/etc/passwd (symlinks resolved inside root), which
// must be a regular file owned by uid, and returns its highest ids (pw is
// false when it has no entry).
func readPasswd(root string, uid uint32) (maxUID, maxGID uint32, pw bool, err error) {
	rfd, err := sys.OpenDir(root)
	if err != nil {
		return 0, 0, false, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	defer sys.Close(rfd)
	fd, err := sys.OpenInRoot(rfd, "etc/passwd", syscall.O_RDONLY|syscall.O_CLOEXEC|syscall.O_NOFOLLOW|syscall.O_NONBLOCK)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return 0, 0, false, errors.New("there is no etc/passwd inside")
		}
		return 0, 0, false, fmt.Errorf("etc/passwd: %w", err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(root, "etc/passwd"))
	defer f.Close()
	st, err := sys.Fstat(fd)
	if err != nil {
		return 0, 0, false, err
	}
	if sys.ModeType(st.Mode) != 0 {
		return 0, 0, false, errors.New("etc/passwd is not a regular file")
	}
	if st.Uid != uid {
		return 0, 0, false, fmt.Errorf("etc/passwd is owned by uid %d, not by the top directory's owner", st.Uid)
	}
	maxUID, maxGID, pw = passwdMaxID(f)
	return maxUID, maxGID, pw, nil
}

// readOCIConfig decodes an OCI runtime config.json; ok is false when
// there is none.
func readOCIConfig(path string) (*specs.Spec, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, false, fmt.Errorf("decode OCI config %s: %w", path, err)
	}
	return &s, true, nil
}

func ociChoice(path string, s *specs.Spec) (MapChoice, error) {
	if s.Linux == nil || len(s.Linux.UIDMappings) == 0 {
		return MapChoice{Source: MapOCIConfig, Reason: path + " has no linux.uidMappings (the container shares the host's user namespace)"}, nil
	}
	um, err := userns.FromOCI(s.Linux.UIDMappings)
	if err != nil {
		return MapChoice{}, fmt.Errorf("OCI config %s: linux.uidMappings: %w", path, err)
	}
	gm, err := userns.FromOCI(s.Linux.GIDMappings)
	if err != nil {
		return MapChoice{}, fmt.Errorf("OCI config %s: linux.gidMappings: %w", path, err)
	}
	if gm.IsZero() {
		gm = um
	}
	return MapChoice{Source: MapOCIConfig, UIDMap: um, GIDMap: gm, Reason: "linux.uidMappings of " + path}, nil
}
