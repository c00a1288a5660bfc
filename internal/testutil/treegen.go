package testutil

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// BoundarySizes are the sizes of regular files that sit on the edges of
// the buffers a tar reader or writer uses: the 512-byte tar block, the
// 4 KiB page, 64 KiB and 256 KiB copy buffers, 1 MiB, and past 8 MiB.
var BoundarySizes = []int64{
	0, 1, 511, 512, 513, 4095, 4096, 4097,
	64<<10 - 1, 64 << 10, 64<<10 + 1,
	256<<10 - 1, 256 << 10, 256<<10 + 1,
	1<<20 - 1, 1 << 20, 1<<20 + 1,
	8<<20 + 1,
}

// GenOptions says what [Generate] creates. The tree is a function of the
// options: the same seed gives the same names, sizes, contents, modes,
// owners and times.
type GenOptions struct {
	Seed int64
	// HostUID and HostGID give the host id of a container id: owners,
	// ACL qualifiers and capability rootids are chosen as container ids
	// (0..65535) and written through them. nil is the identity.
	HostUID, HostGID IDMap
	// Catalogue creates the fixed tree of every kind of entry (see
	// [Generate]); Random adds that many random entries.
	Catalogue bool
	Random    int
	// BigSizes are the sizes of the catalogue's big files ("tens of
	// MiB"); keep them small for quick runs.
	BigSizes []int64
	// SparseSize is the apparent size of the catalogue's sparse files
	// (0: none); random sparse files are at most this big.
	SparseSize int64
	// MaxRandomSize bounds the boundary sizes drawn for random files;
	// 0 means 1 MiB+1.
	MaxRandomSize int64
	// Owners spreads owners over the container's ids (needs root);
	// otherwise every entry keeps the creator's uid and gid.
	Owners bool
	// Devices adds device nodes (needs root in the initial namespace).
	Devices bool
	// Trusted adds trusted.* xattrs (needs CAP_SYS_ADMIN).
	Trusted bool
	// ACLs sets POSIX ACLs with setfacl (ids through HostUID/HostGID).
	ACLs bool
	// Caps sets capabilities of the container root (rootid container
	// 0) and of a nested namespace's root (NestedRoot, default 1000),
	// through SetCap.
	Caps       bool
	NestedRoot uint32
	// SetCap sets caps (libcap text) on path, for the namespace whose
	// root is container uid rootid. nil runs
	// `setcap -n HostUID(rootid) caps path` (needs CAP_SETFCAP).
	SetCap func(path, caps string, rootid uint32) error
	// OwnerReadable keeps u+r on files and u+rx on directories, so that
	// an unprivileged creator can read back what it made.
	OwnerReadable bool
}

// GenTree is what [Generate] made.
type GenTree struct {
	Root    string
	Seed    int64
	Entries int   // entries created, the root excluded
	Bytes   int64 // bytes of file data written
	// Sparse lists the sparse files, for [CheckSparse].
	Sparse []SparseFile
	// Devices lists the device nodes (relative paths).
	Devices []string
	// CapFiles lists the files given caps (relative paths).
	CapFiles []string
	// Trusted lists the entries with trusted.* xattrs.
	Trusted []string
}

// SparseFile is a file made of holes and a few data extents.
type SparseFile struct {
	Rel  string
	Size int64
	Data []Extent
}

// Extent is a run of data of a sparse file.
type Extent struct {
	Off, Len int64
}

// Generate creates a test tree in root (created; it must not exist) and
// returns what it made. Regular files hold random, incompressible bytes.
//
// The catalogue (opts.Catalogue) holds: bin/ (caps of the container root
// and of the nested root, a hardlink to a file with caps, setuid and
// setgid files), sizes/ (a file of each of [BoundarySizes]), big/ (the
// BigSizes), links/ (a hardlink to the biggest file, a group of three
// hardlinks across directories, relative, absolute, dangling, directory
// and long symlinks), modes/ (directories 0700, 0500, 1777, 2775 with
// files; files 0000, 0600, 0444, 1644, 7777), special/ (a fifo; char
// and block devices), xattr/ (small, binary and empty user.* values, a
// 3000-byte value, a directory's xattr, a trusted.* xattr), acl/ (access
// and default ACLs, an ACL with caps), sparse/ (holes in the middle,
// at the start, at the end, only a hole), home/user/ (owned by container
// uid 1000) and long/ (names and paths beyond tar's 100-byte fields).
//
// Entries are made in this order: data, user.* xattrs, owner, ACL, mode;
// then, when all exist, directory modes (deepest first), caps (chown and
// writes clear them) and modification times (children before parents).
func Generate(tb testing.TB, root string, opts GenOptions) *GenTree {
	tb.Helper()
	if opts.NestedRoot == 0 {
		opts.NestedRoot = 1000
	}
	if opts.MaxRandomSize == 0 {
		opts.MaxRandomSize = 1<<20 + 1
	}
	g := &generator{
		tb: tb, root: root, opts: opts,
		r:    rand.New(rand.NewPCG(uint64(opts.Seed), 0x6e73636170)),
		tree: &GenTree{Root: root, Seed: opts.Seed},
		buf:  make([]byte, 1<<20),
	}
	g.mkdir(".", 0o755, 0, 0)
	if !IsRoot() {
		// Directories without u+w (0500) would stop the removal of the
		// temporary directory by an unprivileged owner.
		tb.Cleanup(func() { writable(root) })
	}
	if opts.Catalogue {
		g.catalogue()
	}
	for range opts.Random {
		g.random()
	}
	g.finish()
	return g.tree
}

type generator struct {
	tb    testing.TB
	root  string
	opts  GenOptions
	r     *rand.Rand
	tree  *GenTree
	buf   []byte
	seq   uint64
	paths []string // creation order, for the times
	dirs  []string
	files []string  // regular files that own their inode (link targets)
	later []dirMode // directory modes, applied at the end
	caps  []capJob
}

type dirMode struct {
	rel  string
	mode uint32
}

type capJob struct {
	rel, caps string
	rootid    uint32
}

func (g *generator) abs(rel string) string { return filepath.Join(g.root, rel) }

func (g *generator) must(err error) {
	g.tb.Helper()
	if err != nil {
		g.tb.Fatalf("generate %s (seed %d): %v", g.root, g.opts.Seed, err)
	}
}

func (g *generator) hostUID(id uint32) uint32 { return g.opts.HostUID.apply(id) }
func (g *generator) hostGID(id uint32) uint32 { return g.opts.HostGID.apply(id) }

// owner returns a random container uid and gid: root half the time.
func (g *generator) owner() (uint32, uint32) {
	pick := func() uint32 {
		if g.r.IntN(2) == 0 {
			return 0
		}
		return 1 + g.r.Uint32N(65535)
	}
	return pick(), pick()
}

func (g *generator) added(rel string) {
	g.paths = append(g.paths, rel)
	if rel != "." {
		g.tree.Entries++
	}
}

// chown gives rel the container owner uid:gid when opts.Owners.
func (g *generator) chown(rel string, uid, gid uint32) {
	if g.opts.Owners {
		g.must(os.Lchown(g.abs(rel), int(g.hostUID(uid)), int(g.hostGID(gid))))
	}
}

func (g *generator) mode(mode uint32, dir bool) uint32 {
	if g.opts.OwnerReadable {
		if dir {
			return mode | 0o500
		}
		return mode | 0o400
	}
	return mode
}

// mkdir creates the directory rel; its mode is set at the end.
func (g *generator) mkdir(rel string, mode, uid, gid uint32) {
	if rel != "." {
		g.must(os.Mkdir(g.abs(rel), 0o700))
	} else {
		g.must(os.Mkdir(g.root, 0o700))
	}
	g.chown(rel, uid, gid)
	g.later = append(g.later, dirMode{rel, g.mode(mode, true)})
	g.dirs = append(g.dirs, rel)
	g.added(rel)
}

// file creates the regular file rel with size random bytes.
func (g *generator) file(rel string, size int64, mode, uid, gid uint32, xattrs map[string][]byte) {
	f, err := os.OpenFile(g.abs(rel), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	g.must(err)
	g.seq++
	var seed [32]byte
	binary.LittleEndian.PutUint64(seed[:], uint64(g.opts.Seed))
	binary.LittleEndian.PutUint64(seed[8:], g.seq)
	seed = sha256.Sum256(seed[:])
	src := rand.NewChaCha8(seed)
	for left := size; left > 0; {
		n := min(left, int64(len(g.buf)))
		_, _ = src.Read(g.buf[:n]) // never fails
		if _, err := f.Write(g.buf[:n]); err != nil {
			f.Close()
			g.must(err)
		}
		left -= n
	}
	g.must(f.Close())
	g.tree.Bytes += size
	g.entry(rel, mode, uid, gid, xattrs)
	g.files = append(g.files, rel)
}

// entry gives a new entry other than a directory its xattrs, owner and
// mode.
func (g *generator) entry(rel string, mode, uid, gid uint32, xattrs map[string][]byte) {
	p := g.abs(rel)
	for n, v := range xattrs {
		g.must(unix.Lsetxattr(p, n, v, 0))
	}
	g.chown(rel, uid, gid)
	// After chown, which clears setuid and setgid.
	g.must(unix.Chmod(p, g.mode(mode, false)))
	g.added(rel)
}

func (g *generator) sparse(rel string, size int64, data []Extent) {
	f, err := os.OpenFile(g.abs(rel), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	g.must(err)
	g.must(f.Truncate(size))
	for _, e := range data {
		b := make([]byte, e.Len)
		for i := range b {
			b[i] = byte(g.r.IntN(255) + 1) // no zero byte: a tool cannot mistake data for a hole
		}
		if _, err := f.WriteAt(b, e.Off); err != nil {
			f.Close()
			g.must(err)
		}
		g.tree.Bytes += e.Len
	}
	g.must(f.Close())
	uid, gid := g.owner()
	g.entry(rel, 0o644, uid, gid, nil)
	g.tree.Sparse = append(g.tree.Sparse, SparseFile{Rel: rel, Size: size, Data: data})
}

func (g *generator) symlink(rel, target string) {
	g.must(os.Symlink(target, g.abs(rel)))
	uid, gid := g.owner()
	g.chown(rel, uid, gid)
	g.added(rel)
}

func (g *generator) hardlink(rel, target string) {
	g.must(os.Link(g.abs(target), g.abs(rel)))
	g.added(rel)
}

func (g *generator) fifo(rel string, mode uint32) {
	g.must(unix.Mkfifo(g.abs(rel), 0o600))
	uid, gid := g.owner()
	g.entry(rel, mode, uid, gid, nil)
}

func (g *generator) device(rel string, typ, mode, major, minor uint32) {
	g.must(unix.Mknod(g.abs(rel), typ|0o600, int(unix.Mkdev(major, minor))))
	uid, gid := g.owner()
	g.entry(rel, mode, uid, gid, nil)
	g.tree.Devices = append(g.tree.Devices, rel)
}

// acl runs setfacl with the spec, whose ids are written as u:ID / g:ID in
// container ids and translated here.
func (g *generator) acl(rel string, args ...string) {
	for i, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		var out []string
		for e := range strings.SplitSeq(a, ",") {
			f := strings.Split(e, ":")
			j := 0
			if f[0] == "d" || f[0] == "default" {
				j = 1
			}
			if len(f) == j+3 && f[j+1] != "" {
				var id uint32
				_, err := fmt.Sscan(f[j+1], &id)
				g.must(err)
				switch f[j] {
				case "u", "user":
					id = g.hostUID(id)
				case "g", "group":
					id = g.hostGID(id)
				}
				f[j+1] = fmt.Sprint(id)
			}
			out = append(out, strings.Join(f, ":"))
		}
		args[i] = strings.Join(out, ",")
	}
	args = append(args, "--", g.abs(rel))
	if out, err := exec.Command("setfacl", args...).CombinedOutput(); err != nil {
		g.tb.Fatalf("setfacl %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func (g *generator) setcap(rel, caps string, rootid uint32) {
	g.caps = append(g.caps, capJob{rel, caps, rootid})
	g.tree.CapFiles = append(g.tree.CapFiles, rel)
}

func (g *generator) catalogue() {
	o := g.opts
	nested := o.NestedRoot
	small := func(rel string, size int64, mode uint32) {
		uid, gid := g.owner()
		g.file(rel, size, mode, uid, gid, nil)
	}
	dir := func(rel string, mode uint32) {
		uid, gid := g.owner()
		g.mkdir(rel, mode, uid, gid)
	}

	g.mkdir("bin", 0o755, 0, 0)
	g.file("bin/ping", 4097, 0o755, 0, 0, nil)
	g.hardlink("bin/ping6", "bin/ping")
	g.file("bin/nested", 513, 0o750, nested, nested+1, nil)
	g.file("bin/suid", 511, 0o4755, 0, 0, nil)
	g.file("bin/sgid", 512, 0o2711, 0, 42, nil)
	g.file("bin/both", 1, 0o6755, 0, 0, nil)
	if o.Caps {
		g.setcap("bin/ping", "cap_net_raw=ep", 0)
		g.setcap("bin/nested", "cap_net_admin,cap_net_raw=ep", nested)
		g.setcap("bin/suid", "cap_dac_override=p cap_chown+i", 0)
	}

	dir("sizes", 0o755)
	for _, s := range BoundarySizes {
		small(fmt.Sprintf("sizes/s%d", s), s, 0o644)
	}
	dir("big", 0o755)
	biggest := fmt.Sprintf("sizes/s%d", BoundarySizes[len(BoundarySizes)-1])
	for i, s := range o.BigSizes {
		small(fmt.Sprintf("big/big%d", i), s, 0o640)
		if i == 0 {
			biggest = "big/big0"
		}
	}

	dir("links", 0o755)
	g.hardlink("links/big-hard", biggest)
	small("links/three-a", 4096, 0o644)
	dir("links/sub", 0o755)
	g.hardlink("links/sub/three-b", "links/three-a")
	g.hardlink("links/three-c", "links/three-a")
	g.symlink("links/rel", "../sizes/s513")
	g.symlink("links/abs", "/etc/passwd")
	g.symlink("links/dangling", "no/such/target")
	g.symlink("links/dir", "../bin")
	g.symlink("links/long", strings.Repeat("long-target/", 20)+"end")

	dir("modes", 0o755)
	for _, m := range []uint32{0o700, 0o500, 0o1777, 0o2775} {
		d := fmt.Sprintf("modes/d%04o", m)
		dir(d, m)
		small(d+"/f", 100, 0o644)
	}
	for _, m := range []uint32{0, 0o600, 0o444, 0o1644, 0o7777} {
		small(fmt.Sprintf("modes/f%04o", m), 64, m)
	}

	dir("special", 0o755)
	g.fifo("special/fifo", 0o640)
	if o.Devices {
		g.device("special/null", unix.S_IFCHR, 0o666, 1, 3)
		g.device("special/loop0", unix.S_IFBLK, 0o660, 7, 0)
	}

	dir("xattr", 0o755)
	uid, gid := g.owner()
	g.file("xattr/small", 10, 0o644, uid, gid, map[string][]byte{
		"user.a": []byte("1"), "user.bin": []byte("a\x00b\xffc"), "user.empty": {},
		"user.name with space": []byte("v"),
	})
	big := make([]byte, 3000)
	for i := range big {
		big[i] = byte(g.r.Uint32())
	}
	uid, gid = g.owner()
	g.file("xattr/large", 4096, 0o644, uid, gid, map[string][]byte{"user.big": big})
	uid, gid = g.owner()
	g.mkdir("xattr/dir", 0o755, uid, gid)
	g.must(unix.Lsetxattr(g.abs("xattr/dir"), "user.dir", []byte("d"), 0))
	if o.Trusted {
		uid, gid = g.owner()
		g.file("xattr/trusted", 7, 0o644, uid, gid, map[string][]byte{"trusted.nscap": []byte("t\x00v"), "user.too": []byte("u")})
		g.tree.Trusted = append(g.tree.Trusted, "xattr/trusted")
	}

	if o.ACLs {
		dir("acl", 0o755)
		small("acl/file", 300, 0o664)
		g.acl("acl/file", "-m", "u:33:r,g:44:rw")
		dir("acl/dir", 0o775)
		g.acl("acl/dir", "-m", "u:35:rwx", "-m", "d:u:33:rx,d:g:44:r")
		g.file("acl/caps", 4095, 0o755, 0, 0, nil)
		g.acl("acl/caps", "-m", "u:1000:rx")
		if o.Caps {
			g.setcap("acl/caps", "cap_net_bind_service=ep", 0)
		}
	}

	if o.SparseSize > 0 {
		s := o.SparseSize
		dir("sparse", 0o755)
		// 8 KiB of data in two extents, holes at the start and the end.
		g.sparse("sparse/holes", s, []Extent{{s / 3 &^ 4095, 4096}, {2 * s / 3 &^ 4095, 4096}})
		g.sparse("sparse/head", s/4, []Extent{{0, 5000}})
		tail := s/2 + 1234
		g.sparse("sparse/tail", tail, []Extent{{tail - 3000, 3000}})
		g.sparse("sparse/none", s/8, nil)
	}

	g.mkdir("home", 0o755, 0, 0)
	g.mkdir("home/user", 0o750, nested, nested)
	g.file("home/user/.profile", 200, 0o600, nested, nested, nil)

	dir("long", 0o755)
	d := "long/" + strings.Repeat("d", 150)
	dir(d, 0o755)
	small(d+"/"+strings.Repeat("f", 200), 513, 0o644)
}

// name returns a fresh random name in dir.
func (g *generator) name(dir string) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789._-"
	var n int
	switch k := g.r.IntN(100); {
	case k < 5:
		n = 100 + g.r.IntN(150)
	default:
		n = 1 + g.r.IntN(16)
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = letters[g.r.IntN(len(letters))]
	}
	s := string(b)
	switch g.r.IntN(20) {
	case 0:
		s += " sp"
	case 1:
		s += "-é"
	}
	if s == "." || s == ".." {
		s = "x" + s
	}
	for i := 0; ; i++ {
		c := s
		if i > 0 {
			c = fmt.Sprintf("%s%d", s, i)
		}
		if _, err := os.Lstat(g.abs(filepath.Join(dir, c))); errors.Is(err, fs.ErrNotExist) {
			return filepath.Join(dir, c)
		}
	}
}

var capTexts = []string{"cap_net_raw=ep", "cap_net_admin,cap_net_raw=ep", "cap_dac_override=p", "cap_setuid,cap_setgid=eip", "cap_chown+i"}

// random adds one random entry under a random directory.
func (g *generator) random() {
	o := g.opts
	parent := g.dirs[g.r.IntN(len(g.dirs))]
	rel := g.name(parent)
	uid, gid := g.owner()
	mode := g.r.Uint32N(0o10000)
	switch k := g.r.IntN(100); {
	case k < 55:
		var sizes []int64
		for _, s := range BoundarySizes {
			if s <= o.MaxRandomSize {
				sizes = append(sizes, s)
			}
		}
		size := sizes[g.r.IntN(len(sizes))]
		if g.r.IntN(4) == 0 {
			size = g.r.Int64N(o.MaxRandomSize + 1)
		}
		var xattrs map[string][]byte
		if g.r.IntN(5) == 0 {
			v := make([]byte, g.r.IntN(1024))
			for i := range v {
				v[i] = byte(g.r.Uint32())
			}
			xattrs = map[string][]byte{"user.r" + fmt.Sprint(g.r.IntN(100)): v}
		}
		g.file(rel, size, mode, uid, gid, xattrs)
		if o.ACLs && g.r.IntN(8) == 0 {
			g.acl(rel, "-m", fmt.Sprintf("u:%d:r,g:%d:rw", 1+g.r.Uint32N(65535), 1+g.r.Uint32N(65535)))
		}
		if o.Caps && g.r.IntN(8) == 0 {
			rootid := uint32(0)
			if g.r.IntN(2) == 0 {
				rootid = o.NestedRoot
			}
			g.setcap(rel, capTexts[g.r.IntN(len(capTexts))], rootid)
		}
	case k < 70:
		g.mkdir(rel, mode, uid, gid)
		if o.ACLs && g.r.IntN(6) == 0 {
			g.acl(rel, "-m", fmt.Sprintf("d:u:%d:rwx", 1+g.r.Uint32N(65535)))
		}
	case k < 80:
		var target string
		switch g.r.IntN(4) {
		case 0:
			target = "/" + strings.Repeat("abs/", g.r.IntN(40)) + "x"
		case 1:
			target = "dangling-" + fmt.Sprint(g.r.IntN(1000))
		default:
			to := g.paths[g.r.IntN(len(g.paths))]
			up := strings.Repeat("../", strings.Count(parent, "/")+1)
			if parent == "." {
				up = ""
			}
			target = up + to
		}
		g.symlink(rel, target)
	case k < 88 && len(g.files) > 0:
		g.hardlink(rel, g.files[g.r.IntN(len(g.files))])
	case k < 92:
		g.fifo(rel, mode)
	case k < 96 && o.SparseSize > 0:
		size := 1 + g.r.Int64N(min(o.SparseSize, 16<<20))
		var data []Extent
		for off := int64(0); off < size; {
			off += g.r.Int64N(size/2 + 1)
			if off >= size {
				break
			}
			n := min(1+g.r.Int64N(20000), size-off)
			data = append(data, Extent{off, n})
			off += n
		}
		g.sparse(rel, size, data)
	default:
		g.file(rel, g.r.Int64N(5000), mode, uid, gid, nil)
	}
}

// finish applies what must come last: directory modes (deepest first),
// caps, then times (children before parents).
func (g *generator) finish() {
	for i := len(g.later) - 1; i >= 0; i-- {
		d := g.later[i]
		g.must(unix.Chmod(g.abs(d.rel), d.mode))
	}
	for _, c := range g.caps {
		p := g.abs(c.rel)
		if g.opts.SetCap != nil {
			g.must(g.opts.SetCap(p, c.caps, c.rootid))
			continue
		}
		out, err := exec.Command("setcap", "-n", fmt.Sprint(g.hostUID(c.rootid)), c.caps, p).CombinedOutput()
		if err != nil {
			g.tb.Fatalf("setcap -n %d %s %s: %v: %s", g.hostUID(c.rootid), c.caps, p, err, out)
		}
	}
	for i := len(g.paths) - 1; i >= 0; i-- {
		// 2001 to 2023: in the past (tar warns about times in the future).
		sec := 1_000_000_000 + g.r.Int64N(700_000_000)
		ts := []unix.Timespec{{Sec: sec, Nsec: 0}, {Sec: sec, Nsec: g.r.Int64N(1_000_000_000)}}
		g.must(unix.UtimesNanoAt(unix.AT_FDCWD, g.abs(g.paths[i]), ts, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// CheckSparse fails the test for every sparse file of files that is
// missing from the snapshot got or takes more room than its data: a tool
// that re-creates holes allocates the blocks of the data extents only
// (with 64 KiB of slack for the filesystem's metadata); one that writes
// zeros allocates the whole size. The content itself is [Compare]'s.
func CheckSparse(tb testing.TB, label string, got Snapshot, files []SparseFile) {
	tb.Helper()
	const block, slack = 4096, 64 << 10
	for _, f := range files {
		e, ok := got[f.Rel]
		if !ok || e.Type != "file" {
			tb.Errorf("%s: sparse file %s: missing (%q)", label, f.Rel, e.Type)
			continue
		}
		var data int64
		for _, x := range f.Data {
			data += (x.Off+x.Len+block-1)&^(block-1) - x.Off&^(block-1)
		}
		if alloc := e.Blocks * 512; alloc > data+slack {
			tb.Errorf("%s: %s: %d bytes allocated for %d bytes of data in %d extents (size %d): holes not re-created",
				label, f.Rel, alloc, data, len(f.Data), f.Size)
		}
	}
}

// writable adds u+rwx to the directories under root that the caller owns.
func writable(root string) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700) // best effort: it is for the cleanup
		}
		return nil
	})
}
