package testutil

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The tree comparison of the round-trip tests: [TakeSnapshot] records what
// a user gets back from a tree (content by sha256, owners, modes, links,
// devices, xattrs, ACLs as getfacl prints them, caps as getcap prints
// them), [Snapshot.Translate] moves the ids of the source into the range
// the result is expected in, and [Compare] lists every difference by path.
// The ACL and capability oracles are the real getfacl and getcap, so that
// a test never judges nscap by nscap's own decoding.

// IDMap translates one id (a uid, a gid or a capability rootid) of the
// source tree into the id expected in the result.
type IDMap func(uint32) uint32

// Shift returns the IDMap adding delta (which may be negative).
func Shift(delta int64) IDMap {
	return func(id uint32) uint32 { return uint32(int64(id) + delta) }
}

// IDs says how the ids of a source tree translate into those of the result
// (a restore into another uid range shifts them). A nil map is the
// identity; a nil RootID uses UID, as the kernel does: a capability's
// rootid is a uid.
type IDs struct {
	UID, GID, RootID IDMap
}

func (m IDMap) apply(id uint32) uint32 {
	if m == nil {
		return id
	}
	return m(id)
}

// Entry is what a user gets back of one path of a tree.
type Entry struct {
	// Type is "file", "dir", "symlink", "fifo", "char", "block" or
	// "socket".
	Type string `json:"type"`
	// Mode holds the 12 permission bits, setuid, setgid and sticky
	// included.
	Mode   uint32 `json:"mode"`
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Size   int64  `json:"size,omitempty"`   // regular files
	SHA256 string `json:"sha256,omitempty"` // regular files
	Target string `json:"target,omitempty"` // symlinks
	Major  uint32 `json:"major,omitempty"`  // devices
	Minor  uint32 `json:"minor,omitempty"`  // devices
	MTime  int64  `json:"mtime"`            // seconds
	Blocks int64  `json:"blocks"`           // st_blocks (512 B), for sparse checks
	// HardLink lists, sorted, every path of the tree that shares the
	// inode of a regular file with more than one link.
	HardLink []string `json:"links,omitempty"`
	// Xattrs maps the user.* and trusted.* xattrs to their values in
	// hex (JSON keeps only valid UTF-8 strings).
	Xattrs map[string]string `json:"xattrs,omitempty"`
	// ACL holds the lines of `getfacl -n -E` (access entries, then the
	// default: entries) of a path that carries an ACL xattr.
	ACL []string `json:"acl,omitempty"`
	// Caps is the security.capability as `getcap -n` prints it.
	Caps *Caps `json:"caps,omitempty"`
}

// Caps is a file capability as `getcap -n` prints it.
type Caps struct {
	// Text is libcap's text ("cap_net_raw=ep"), or, when getcap
	// printed nothing for a file that has the xattr, what it said.
	Text string `json:"text"`
	// RootID is the rootid of a revision 3 value; 0 for revision 2
	// (getcap prints no [rootid=]), which is the host root's.
	RootID uint32 `json:"rootid,omitempty"`
}

// String formats c as getcap -n does.
func (c *Caps) String() string {
	if c == nil {
		return "(none)"
	}
	if c.RootID == 0 {
		return c.Text
	}
	return fmt.Sprintf("%s [rootid=%d]", c.Text, c.RootID)
}

// Snapshot maps the path of every entry of a tree, relative to its root
// ("." for the root itself), to what a user gets back of it.
type Snapshot map[string]Entry

// TakeSnapshot records every entry under root without following
// symlinks. Regular files are hashed as streams (any size is fine). Ids
// are those the calling process sees (in a user namespace, the
// namespace's: see [SelfToHost]). It runs getfacl -n on the entries that
// carry a system.posix_acl_* xattr and getcap -n on those that carry
// security.capability; trusted.* xattrs are listed only for a caller with
// CAP_SYS_ADMIN, as the kernel does.
func TakeSnapshot(tb testing.TB, root string) Snapshot {
	tb.Helper()
	s, err := takeSnapshot(root)
	if err != nil {
		tb.Fatalf("snapshot of %s: %v", root, err)
	}
	return s
}

func takeSnapshot(root string) (Snapshot, error) {
	s := Snapshot{}
	inodes := map[[2]uint64][]string{}
	var aclPaths, capPaths []string
	buf := make([]byte, 1<<20)
	err := filepath.WalkDir(root, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return &fs.PathError{Op: "lstat", Path: p, Err: err}
		}
		e := Entry{
			Type: typeName(st.Mode), Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid,
			MTime: st.Mtim.Sec, Blocks: st.Blocks,
		}
		switch e.Type {
		case "file":
			e.Size = st.Size
			if e.SHA256, err = hashFile(p, buf); err != nil {
				return err
			}
			if st.Nlink > 1 {
				k := [2]uint64{st.Dev, st.Ino}
				inodes[k] = append(inodes[k], rel)
			}
		case "symlink":
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case "char", "block":
			e.Major, e.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
		}
		names, err := listXattrs(p)
		if err != nil {
			return err
		}
		for _, n := range names {
			switch {
			case n == "security.capability":
				capPaths = append(capPaths, rel)
			case n == "system.posix_acl_access" || n == "system.posix_acl_default":
				if n := len(aclPaths); n == 0 || aclPaths[n-1] != rel { // both ACLs of a directory
					aclPaths = append(aclPaths, rel)
				}
			case strings.HasPrefix(n, "user.") || strings.HasPrefix(n, "trusted."):
				v, err := getXattr(p, n)
				if err != nil {
					return err
				}
				if e.Xattrs == nil {
					e.Xattrs = map[string]string{}
				}
				e.Xattrs[n] = hex.EncodeToString(v)
			}
		}
		s[rel] = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, names := range inodes {
		sort.Strings(names)
		for _, n := range names {
			e := s[n]
			e.HardLink = names
			s[n] = e
		}
	}
	if err := addACLs(s, root, aclPaths); err != nil {
		return nil, err
	}
	if err := addCaps(s, root, capPaths); err != nil {
		return nil, err
	}
	return s, nil
}

func typeName(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFCHR:
		return "char"
	case unix.S_IFBLK:
		return "block"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("type %o", mode&unix.S_IFMT)
}

// hashFile returns the sha256 of the file at p, read as a stream.
func hashFile(p string, buf []byte) (string, error) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.CopyBuffer(h, f, buf); err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func listXattrs(p string) ([]string, error) {
	for size := 1024; ; size *= 4 {
		b := make([]byte, size)
		n, err := unix.Llistxattr(p, b)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, &fs.PathError{Op: "llistxattr", Path: p, Err: err}
		}
		var names []string
		for n := range strings.SplitSeq(string(b[:n]), "\x00") {
			if n != "" {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		return names, nil
	}
}

func getXattr(p, name string) ([]byte, error) {
	for size := 256; ; size *= 4 {
		b := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, b)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "lgetxattr " + name, Path: p, Err: err}
		}
		return b[:n], nil
	}
}

// addACLs runs getfacl -n -E on the paths (relative to root), in one
// call, and records the entry lines of each.
func addACLs(s Snapshot, root string, rels []string) error {
	if len(rels) == 0 {
		return nil
	}
	args := []string{"-n", "-E", "-p", "--"}
	for _, r := range rels {
		args = append(args, filepath.Join(root, r))
	}
	out, err := runOracle("getfacl", args...)
	if err != nil {
		return err
	}
	// One block per path, in the order given, each starting "# file:".
	blocks := strings.Split(strings.TrimSpace(out), "\n\n")
	if len(blocks) != len(rels) {
		return fmt.Errorf("getfacl printed %d blocks for %d paths:\n%s", len(blocks), len(rels), out)
	}
	for i, b := range blocks {
		var lines []string
		for l := range strings.SplitSeq(b, "\n") {
			if l != "" && !strings.HasPrefix(l, "#") {
				lines = append(lines, l)
			}
		}
		e := s[rels[i]]
		e.ACL = lines
		s[rels[i]] = e
	}
	return nil
}

// addCaps runs getcap -n on the paths (relative to root), in one call,
// and records what it prints for each.
func addCaps(s Snapshot, root string, rels []string) error {
	if len(rels) == 0 {
		return nil
	}
	args := []string{"-n", "--"}
	for _, r := range rels {
		args = append(args, filepath.Join(root, r))
	}
	cmd := exec.Command("getcap", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil && stdout.Len() == 0 {
		return fmt.Errorf("getcap -n: %v: %s", err, stderr.String())
	}
	// getcap prints "PATH TEXT [rootid=N]", in the order given, nothing
	// for a value it cannot read (it says why on stderr).
	lines := map[string]string{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		l := sc.Text()
		for _, r := range rels {
			p := filepath.Join(root, r) + " "
			if strings.HasPrefix(l, p) && len(p) > len(lines[l]) {
				lines[l] = p
			}
		}
	}
	byPath := map[string]string{}
	for l, p := range lines {
		byPath[p] = strings.TrimPrefix(l, p)
	}
	for _, r := range rels {
		e := s[r]
		text, ok := byPath[filepath.Join(root, r)+" "]
		if !ok {
			e.Caps = &Caps{Text: "(getcap printed nothing: " + strings.TrimSpace(stderr.String()) + ")"}
			s[r] = e
			continue
		}
		c := &Caps{Text: text}
		if i := strings.LastIndex(text, " [rootid="); i >= 0 && strings.HasSuffix(text, "]") {
			id, err := strconv.ParseUint(text[i+len(" [rootid="):len(text)-1], 10, 32)
			if err == nil {
				c.Text, c.RootID = text[:i], uint32(id)
			}
		}
		e.Caps = c
		s[r] = e
	}
	return nil
}

func runOracle(name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// Translate returns a copy of s with the ids of every entry translated
// by ids: owners, the ids of named ACL entries (user:ID through UID,
// group:ID through GID, default: ones alike) and capability rootids (a
// revision 2 cap counts as rootid 0, the host root; a rootid translated
// to 0 is shown as revision 2, as the kernel stores it).
func (s Snapshot) Translate(ids IDs) Snapshot {
	rootID := ids.RootID
	if rootID == nil {
		rootID = ids.UID
	}
	out := make(Snapshot, len(s))
	for p, e := range s {
		e.UID, e.GID = ids.UID.apply(e.UID), ids.GID.apply(e.GID)
		if e.ACL != nil {
			acl := make([]string, len(e.ACL))
			for i, l := range e.ACL {
				acl[i] = translateACLLine(l, ids)
			}
			e.ACL = acl
		}
		if e.Caps != nil {
			c := *e.Caps
			c.RootID = rootID.apply(c.RootID)
			e.Caps = &c
		}
		out[p] = e
	}
	return out
}

// translateACLLine translates the qualifier of a getfacl line
// "[default:]user|group:ID:PERMS".
func translateACLLine(l string, ids IDs) string {
	f := strings.Split(l, ":")
	i := 0
	if f[0] == "default" {
		i = 1
	}
	if len(f) != i+3 || f[i+1] == "" {
		return l
	}
	id, err := strconv.ParseUint(f[i+1], 10, 32)
	if err != nil {
		return l
	}
	switch f[i] {
	case "user":
		f[i+1] = strconv.FormatUint(uint64(ids.UID.apply(uint32(id))), 10)
	case "group":
		f[i+1] = strconv.FormatUint(uint64(ids.GID.apply(uint32(id))), 10)
	}
	return strings.Join(f, ":")
}

// Field is a set of the properties that [Compare] checks. The type of an
// entry and its presence are always checked.
type Field uint32

// Properties of an entry.
const (
	FieldMode       Field = 1 << iota // the 12 permission bits
	FieldOwner                        // uid and gid
	FieldSize                         // size of a regular file
	FieldContent                      // sha256 of a regular file
	FieldSymlink                      // symlink target
	FieldHardlinks                    // the set of paths sharing an inode
	FieldDevice                       // major and minor of a device
	FieldUserXattrs                   // user.* names and values
	FieldTrusted                      // trusted.* names and values
	FieldACL                          // getfacl -n -E lines, ids translated
	FieldCaps                         // getcap -n text, rootid translated
	FieldMTime                        // modification time, seconds

	// FieldsAll is every field but FieldMTime.
	FieldsAll = FieldMTime - 1
)

var fieldNames = map[Field]string{
	FieldMode: "mode", FieldOwner: "owner", FieldSize: "size", FieldContent: "content",
	FieldSymlink: "symlink", FieldHardlinks: "hardlinks", FieldDevice: "device",
	FieldUserXattrs: "user xattr", FieldTrusted: "trusted xattr", FieldACL: "acl",
	FieldCaps: "caps", FieldMTime: "mtime",
}

// CompareOptions says what [Compare] checks.
type CompareOptions struct {
	// Fields lists the properties compared (type and presence always
	// are).
	Fields Field
	// IDs translates the ids of the source (want) into those expected
	// in the result (see [Snapshot.Translate]).
	IDs IDs
	// Ignore leaves properties of some paths out of the comparison.
	Ignore []Ignore
}

// Ignore leaves what a round trip legitimately cannot give back out of a
// comparison.
type Ignore struct {
	// Pattern is a path.Match pattern of relative paths ("." is the
	// root).
	Pattern string
	// Tree extends the Ignore to everything below the matching paths.
	Tree bool
	// Fields are the properties left out; 0 leaves the entries out
	// altogether (their presence included).
	Fields Field
	// Why names the rule that makes the difference legitimate (a
	// kernel rule, a tool's documented behaviour): required, so that
	// every exception is explained where it is made.
	Why string
}

// IgnorePaths returns an Ignore for each of paths (relative, no
// patterns), leaving the entries out altogether for the reason why.
func IgnorePaths(why string, paths ...string) []Ignore {
	var out []Ignore
	for _, p := range paths {
		out = append(out, Ignore{Pattern: p, Why: why})
	}
	return out
}

// Difference is one way in which a result differs from its source.
type Difference struct {
	Path string // relative to the roots
	What string // "missing", "extra", "type", or a field's name
	Want string // the source's value, translated
	Got  string // the result's value
}

// String formats d as one line.
func (d Difference) String() string {
	switch d.What {
	case "missing", "extra":
		return fmt.Sprintf("%s: %s (%s)", d.Path, d.What, d.Want+d.Got)
	}
	return fmt.Sprintf("%s: %s: want %s, got %s", d.Path, d.What, d.Want, d.Got)
}

// Compare translates want (the source) by opts.IDs and lists, sorted by
// path, every difference from got (the result) in opts.Fields.
func Compare(want, got Snapshot, opts CompareOptions) []Difference {
	want = want.Translate(opts.IDs)
	for _, ig := range opts.Ignore {
		if ig.Why == "" {
			panic(fmt.Sprintf("testutil.Compare: Ignore %q says not why", ig.Pattern))
		}
	}
	// skipped returns the fields of p left out, and whether p is left
	// out altogether.
	skipped := func(p string) (Field, bool) {
		var f Field
		for q := p; ; q = path.Dir(q) {
			for _, ig := range opts.Ignore {
				if q != p && !ig.Tree {
					continue
				}
				if ok, _ := path.Match(ig.Pattern, q); ok {
					if ig.Fields == 0 {
						return 0, true
					}
					f |= ig.Fields
				}
			}
			if q == "." || q == "/" {
				return f, false
			}
		}
	}
	ignored := func(p string) bool {
		_, all := skipped(p)
		return all
	}
	var out []Difference
	add := func(p string, f Field, w, g string) {
		out = append(out, Difference{Path: p, What: fieldNames[f], Want: w, Got: g})
	}
	paths := map[string]bool{}
	for p := range want {
		paths[p] = true
	}
	for p := range got {
		paths[p] = true
	}
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		skip, all := skipped(p)
		if all {
			continue
		}
		w, inWant := want[p]
		g, inGot := got[p]
		switch {
		case !inGot:
			out = append(out, Difference{Path: p, What: "missing", Want: w.Type})
			continue
		case !inWant:
			out = append(out, Difference{Path: p, What: "extra", Got: g.Type})
			continue
		case w.Type != g.Type:
			out = append(out, Difference{Path: p, What: "type", Want: w.Type, Got: g.Type})
			continue
		}
		has := func(f Field) bool { return opts.Fields&^skip&f != 0 }
		if has(FieldMode) && w.Mode != g.Mode {
			add(p, FieldMode, fmt.Sprintf("%04o", w.Mode), fmt.Sprintf("%04o", g.Mode))
		}
		if has(FieldOwner) && (w.UID != g.UID || w.GID != g.GID) {
			add(p, FieldOwner, fmt.Sprintf("%d:%d", w.UID, w.GID), fmt.Sprintf("%d:%d", g.UID, g.GID))
		}
		if has(FieldSize) && w.Size != g.Size {
			add(p, FieldSize, strconv.FormatInt(w.Size, 10), strconv.FormatInt(g.Size, 10))
		}
		if has(FieldContent) && w.SHA256 != g.SHA256 {
			add(p, FieldContent, "sha256 "+w.SHA256, "sha256 "+g.SHA256)
		}
		if has(FieldSymlink) && w.Target != g.Target {
			add(p, FieldSymlink, strconv.Quote(w.Target), strconv.Quote(g.Target))
		}
		if has(FieldHardlinks) {
			wl, gl := keep(w.HardLink, ignored), keep(g.HardLink, ignored)
			if len(wl) > 1 || len(gl) > 1 {
				if !slices.Equal(wl, gl) {
					add(p, FieldHardlinks, fmt.Sprint(wl), fmt.Sprint(gl))
				}
			}
		}
		if has(FieldDevice) && (w.Major != g.Major || w.Minor != g.Minor) {
			add(p, FieldDevice, fmt.Sprintf("%d,%d", w.Major, w.Minor), fmt.Sprintf("%d,%d", g.Major, g.Minor))
		}
		for _, x := range []struct {
			f      Field
			prefix string
		}{{FieldUserXattrs, "user."}, {FieldTrusted, "trusted."}} {
			if !has(x.f) {
				continue
			}
			for _, n := range xattrNames(w.Xattrs, g.Xattrs, x.prefix) {
				wv, wok := w.Xattrs[n]
				gv, gok := g.Xattrs[n]
				if wok != gok || wv != gv {
					add(p, x.f, n+"="+showXattr(wv, wok), n+"="+showXattr(gv, gok))
				}
			}
		}
		if has(FieldACL) && !slices.Equal(w.ACL, g.ACL) {
			add(p, FieldACL, showACL(w.ACL), showACL(g.ACL))
		}
		if has(FieldCaps) && w.Caps.String() != g.Caps.String() {
			add(p, FieldCaps, w.Caps.String(), g.Caps.String())
		}
		if has(FieldMTime) && w.MTime != g.MTime {
			add(p, FieldMTime, strconv.FormatInt(w.MTime, 10), strconv.FormatInt(g.MTime, 10))
		}
	}
	return out
}

func keep(names []string, ignored func(string) bool) []string {
	var out []string
	for _, n := range names {
		if !ignored(n) {
			out = append(out, n)
		}
	}
	return out
}

func xattrNames(a, b map[string]string, prefix string) []string {
	var names []string
	for _, m := range []map[string]string{a, b} {
		for n := range m {
			if strings.HasPrefix(n, prefix) && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	sort.Strings(names)
	return names
}

// showXattr shows a hex value, shortened when long.
func showXattr(v string, ok bool) string {
	switch {
	case !ok:
		return "(none)"
	case len(v) > 64:
		sum := sha256.Sum256([]byte(v))
		return fmt.Sprintf("%s...(%d bytes, sha256 %x)", v[:32], len(v)/2, sum[:6])
	}
	return "0x" + v
}

func showACL(l []string) string {
	if l == nil {
		return "(no ACL xattr)"
	}
	return strings.Join(l, ",")
}

// CheckTree compares the source snapshot want with the tree at gotRoot
// (see [Compare]) and fails the test with every difference, by path,
// under the label naming the round trip.
func CheckTree(tb testing.TB, label string, want Snapshot, gotRoot string, opts CompareOptions) {
	tb.Helper()
	CheckSnapshots(tb, label, want, TakeSnapshot(tb, gotRoot), opts)
}

// CheckSnapshots is [CheckTree] for a result already recorded (e.g. by a
// child process in a user namespace).
func CheckSnapshots(tb testing.TB, label string, want, got Snapshot, opts CompareOptions) {
	tb.Helper()
	diffs := Compare(want, got, opts)
	if len(diffs) == 0 {
		return
	}
	const most = 200
	var b strings.Builder
	for i, d := range diffs {
		if i == most {
			fmt.Fprintf(&b, "\t... and %d more", len(diffs)-most)
			break
		}
		fmt.Fprintf(&b, "\t%s\n", d)
	}
	tb.Errorf("%s: %d differences from the source:\n%s", label, len(diffs), b.String())
}

// SelfToHost returns the translation of the ids the calling process sees
// into host ids, from /proc/self/uid_map and gid_map: the identity
// outside user namespaces. A snapshot taken inside a user namespace,
// translated by it, shows host ids (a cap of the namespace's root, which
// getcap shows as revision 2 there, gets the root's host id).
func SelfToHost(tb testing.TB) IDs {
	tb.Helper()
	read := func(name string) IDMap {
		b, err := os.ReadFile("/proc/self/" + name)
		if err != nil {
			tb.Fatal(err)
		}
		var ext [][3]uint64
		for l := range strings.SplitSeq(strings.TrimSpace(string(b)), "\n") {
			var in, out, n uint64
			if _, err := fmt.Sscan(l, &in, &out, &n); err != nil {
				tb.Fatalf("/proc/self/%s: %q: %v", name, l, err)
			}
			ext = append(ext, [3]uint64{in, out, n})
		}
		return func(id uint32) uint32 {
			for _, e := range ext {
				if uint64(id) >= e[0] && uint64(id)-e[0] < e[2] {
					return uint32(e[1] + uint64(id) - e[0])
				}
			}
			return id // unmapped (the overflow id): left as is
		}
	}
	return IDs{UID: read("uid_map"), GID: read("gid_map")}
}

// RequireOracle fails the test at once, strict or not, unless every named
// program is on PATH. Unlike [RequireTool] it never skips: these are the
// oracles that judge a test's result, and a test without its oracle has
// proved nothing.
func RequireOracle(tb testing.TB, names ...string) {
	tb.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			tb.Fatalf("the oracle %s is not on PATH (make deps installs it): %v", n, err)
		}
	}
}
