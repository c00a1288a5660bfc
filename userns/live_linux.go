package userns

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"syscall"

	"github.com/nscap/nscap/internal/sys"
)

// NSRef identifies a user namespace as the caller sees it.
type NSRef struct {
	// Inode and Dev are the nsfs inode and device of the namespace
	// (fstat of /proc/PID/ns/user); together they identify it. The
	// initial namespace has inode 4026531837 (0xEFFFFFFD).
	Inode uint64 `json:"inode"`
	Dev   uint64 `json:"dev"`
	// ID is the namespace id from NS_GET_ID (Linux 6.12+), 0 when the
	// kernel lacks that ioctl.
	ID uint64 `json:"id,omitempty"`
	// OwnerUID is the effective uid of the namespace's creator as an id
	// of the caller's namespace (NS_GET_OWNER_UID, Linux 4.11+), or 65534
	// (the overflow uid) when the caller's namespace does not map it.
	OwnerUID uint32 `json:"owner_uid"`
}

// String formats r as /proc shows a user namespace link: "user:[INODE]".
func (r NSRef) String() string { return "user:[" + strconv.FormatUint(r.Inode, 10) + "]" }

type nsKey struct{ dev, ino uint64 }

func (r NSRef) key() nsKey { return nsKey{r.Dev, r.Inode} }

// Namespace describes the user namespace of a process as the caller sees
// it. See [Inspect].
type Namespace struct {
	// PID is the process inspected.
	PID int `json:"pid"`
	NSRef
	// Self is true when this is the caller's own user namespace.
	Self bool `json:"self"`
	// Descendant is true when the namespace is the caller's own or lies
	// below it; only then can its parents be walked.
	Descendant bool `json:"descendant"`
	// Depth is the number of levels between the namespace and the
	// caller's namespace: 0 for the caller's own, 1 for a child. It is
	// len(Parents).
	Depth int `json:"depth"`
	// Parents is the chain of parents found with NS_GET_PARENT, the
	// immediate parent first, the caller's own namespace last. It is
	// empty for the caller's namespace and for namespaces outside the
	// caller's scope (the ioctl gives EPERM there).
	Parents []NSRef `json:"parents,omitempty"`
	// UIDMap and GIDMap are /proc/PID/uid_map and gid_map as the caller
	// reads them: outside ids are ids of the caller's namespace, except
	// for the caller's own namespace, whose maps the kernel shows relative
	// to its parent. Extents whose outside ids the caller cannot see are
	// left out (see [ReadMaps]).
	UIDMap Map `json:"uid_map"`
	GIDMap Map `json:"gid_map"`
	// RootID is the namespace's uid 0 as a uid of the caller's namespace
	// (0 for the caller's own namespace), valid when RootVisible is true.
	// It is the rootid a revision-3 security.capability needs so that
	// the capabilities are honoured in this namespace.
	RootID      uint32 `json:"rootid"`
	RootVisible bool   `json:"root_visible"`
}

func procPath(pid int, name string) string {
	return "/proc/" + strconv.Itoa(pid) + "/" + name
}

// nsRefOf describes the namespace open as f (at path, for errors).
func nsRefOf(f *os.File, path string) (NSRef, error) {
	fd := int(f.Fd())
	st, err := sys.Fstat(fd)
	if err != nil {
		return NSRef{}, &fs.PathError{Op: "fstat", Path: path, Err: err}
	}
	r := NSRef{Inode: st.Ino, Dev: st.Dev}
	owner, err := sys.NSOwnerUID(fd)
	if err != nil {
		return NSRef{}, &fs.PathError{Op: "ioctl NS_GET_OWNER_UID", Path: path, Err: err}
	}
	r.OwnerUID = owner
	if id, err := sys.NSID(fd); err == nil {
		r.ID = id
	}
	return r, nil
}

// selfKey identifies the caller's user namespace.
func selfKey() (nsKey, error) {
	st, err := sys.StatFollow("/proc/self/ns/user")
	if err != nil {
		return nsKey{}, &fs.PathError{Op: "stat", Path: "/proc/self/ns/user", Err: err}
	}
	return nsKey{st.Dev, st.Ino}, nil
}

// parentOf returns the parent of the namespace open as f, or nil when
// NS_GET_PARENT refuses with EPERM (f is the initial namespace, the
// caller's own, or outside the caller's scope).
func parentOf(f *os.File, path string) (*os.File, error) {
	fd, err := sys.NSParent(int(f.Fd()))
	if errors.Is(err, syscall.EPERM) {
		return nil, nil
	}
	if err != nil {
		return nil, &fs.PathError{Op: "ioctl NS_GET_PARENT", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path+" (parent)"), nil
}

// maxDepth bounds parent walks: user namespaces nest at most 32 deep.
const maxDepth = 33

// Inspect describes the user namespace of process pid: its identity
// (fstat of /proc/PID/ns/user, ioctls NS_GET_ID and NS_GET_OWNER_UID), the
// chain of parents up to the caller's namespace (ioctl NS_GET_PARENT until
// EPERM, Linux 4.9+), its maps and its root uid as the caller sees them.
// See ioctl_ns(2). Errors are [*fs.PathError]s wrapping the errno.
func Inspect(pid int) (*Namespace, error) {
	path := procPath(pid, "ns/user")
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ref, err := nsRefOf(f, path)
	if err != nil {
		return nil, err
	}
	self, err := selfKey()
	if err != nil {
		return nil, err
	}
	ns := &Namespace{PID: pid, NSRef: ref, Self: ref.key() == self}
	cur := f
	for range maxDepth {
		p, err := parentOf(cur, path)
		if err != nil {
			return nil, err
		}
		if p == nil {
			break
		}
		if cur != f {
			cur.Close()
		}
		cur = p
		pref, err := nsRefOf(p, path)
		if err != nil {
			p.Close()
			return nil, err
		}
		ns.Parents = append(ns.Parents, pref)
	}
	if cur != f {
		cur.Close()
	}
	ns.Depth = len(ns.Parents)
	ns.Descendant = ns.Self || (len(ns.Parents) > 0 && ns.Parents[len(ns.Parents)-1].key() == self)
	ns.UIDMap, ns.GIDMap, err = ReadMaps(pid)
	if err != nil {
		return nil, err
	}
	ns.RootID, ns.RootVisible = rootFromMap(ns.UIDMap, ns.Self)
	return ns, nil
}

func rootFromMap(m Map, self bool) (uint32, bool) {
	if self {
		return 0, true
	}
	r, err := m.ToHost(0)
	return r, err == nil
}

// ReadMaps reads /proc/PID/uid_map and /proc/PID/gid_map. The kernel
// renders the outside ids (column 2) in the user namespace of the reader,
// here the caller: kernel ids (kuids) when the caller is in the initial
// namespace. Two exceptions follow from the kernel's rule: for a process
// in the caller's own namespace the outside ids are those of its parent,
// and extents whose outside ids the caller's namespace does not map show
// as 4294967295 and are left out of the result. A namespace whose map is
// not written yet gives a zero Map.
func ReadMaps(pid int) (uid, gid Map, err error) {
	if uid, err = readShownMap(procPath(pid, "uid_map")); err != nil {
		return Map{}, Map{}, err
	}
	if gid, err = readShownMap(procPath(pid, "gid_map")); err != nil {
		return Map{}, Map{}, err
	}
	return uid, gid, nil
}

func readShownMap(path string) (Map, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Map{}, err
	}
	if len(b) == 0 {
		return Map{}, nil
	}
	m, _, err := parseShownMap(string(b))
	if err != nil {
		return Map{}, fmt.Errorf("parse %s: %w", path, err)
	}
	return m, nil
}

// RootOf returns uid 0 of the user namespace of process pid as a uid of
// the caller's namespace: column 2 of the line of /proc/PID/uid_map that
// covers uid 0, read by the caller (a kuid when the caller is in the
// initial namespace), or 0 when pid shares the caller's namespace. This is
// the rootid that makes a revision-3 file capability honoured in pid's
// namespace. A root that the caller's namespace cannot see, or a
// namespace that does not map uid 0, gives an [*UnmappedError] (matching
// [ErrUnmapped]).
func RootOf(pid int) (uint32, error) {
	path := procPath(pid, "ns/user")
	st, err := sys.StatFollow(path)
	if err != nil {
		return 0, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	self, err := selfKey()
	if err != nil {
		return 0, err
	}
	if (nsKey{st.Dev, st.Ino}) == self {
		return 0, nil
	}
	m, err := readShownMap(procPath(pid, "uid_map"))
	if err != nil {
		return 0, err
	}
	r, err := m.ToHost(0)
	if err != nil {
		return 0, fmt.Errorf("root of %s: %w", path, err)
	}
	return r, nil
}

// errnoOf extracts an errno from err, if any.
func errnoOf(err error) syscall.Errno {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return 0
}
