//go:build linux

package restorer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math/bits"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/jobstate"

	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/xattrfmt"
	"golang.org/x/sys/unix"
)

// ErrCapsNotRegular is a capability xattr on an archive member that is not
// a regular file or a directory (a symlink, a device): nscap never writes
// one there.
var ErrCapsNotRegular = errors.New("backup: capability on a member that is not a regular file")

// Limits of the parallel writer: files up to restoreSmallFile bytes are read into
// memory and written by a worker; at most restoreInflight of them wait at a
// time, which bounds the memory of a restore.
const (
	restoreSmallFile = 256 << 10
	restoreInflight  = 8 << 20
	// A worker gets files by batches of up to restoreBatch files or
	// restoreBatchBytes bytes.
	restoreBatch      = 64
	restoreBatchBytes = 1 << 20
)

// Restore extracts the archive read from r under the directory dest,
// which is created when it does not exist (its parent must); a created
// dest gets the owner, mode and times of the archive's root entry.
//
// Owners, POSIX ACL ids and capability rootids are translated from the
// archive's view to the host through the target maps of opts (see
// [RestoreOptions]); a namespace-relative archive restored without target
// maps is refused with [ErrHostScope]. Every path is resolved beneath dest
// with openat2(2) (RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS, Linux 5.6+): nothing outside dest is created or
// changed, a symlink extracted earlier never redirects a later member, a
// leading "/" is stripped and a ".." component refused as GNU tar does.
//
// Each regular file is given, in this order, its data, owner, mode,
// xattrs, security.capability (last: the kernel clears it on chown and on
// writes) and times, on an inode not yet visible under its final name: a
// restore killed at any point leaves no partial file under a final name.
// Into a dest that holds entries, each file is written to an unnamed inode
// (O_TMPFILE, or a temporary name where unsupported) and only then linked
// under its final name (linkat(2), or renameat(2) over an existing entry).
// Into an empty dest, the whole archive is extracted into a hidden staging
// directory made in dest (files created directly under their names there,
// half the directory operations), then each of its top-level entries is
// renamed into dest (renameat2 RENAME_NOREPLACE), and the archive's "."
// member is applied to dest last. While it runs, the restore keeps a
// state file outside dest, in opts.StateDir (see
// [RestoreOptions.StateDir]), locked, that records the staging directory
// and the token its temporary names carry before either exists: the next
// restore into the same dest removes them (never following a symlink)
// and nothing else, and [Verify] reports them. Nothing planted in dest
// (by the container whose rootfs it may be) passes for that state or is
// removed. With opts.Direct, into an empty dest, small files are created
// directly under their final names instead, giving up that guarantee
// until the restore ends; the state then says so, and a restore that
// finds it replaces every member whatever opts.Overwrite says. A restore
// into a dest another one is restoring into fails with
// [ErrRestoreRunning]. Files of one directory are written by one worker,
// several directories in parallel.
// Directories get their default ACL, mode and times after their contents
// (so that nothing inherits an ACL the archive does not give it).
//
// POSIX ACLs come from system.posix_acl_* xattr records or, as bsdtar and
// GNU tar --acls store them, from SCHILY.acl.access/default text records
// (the numeric ids are used, never names). The xattrs that bsdtar repeats
// on a hardlink member are ignored, as GNU tar and bsdtar ignore them; one
// that differs from its target's is reported through opts.Warn. Caps the
// backup kept host-scoped (the [HostScopedComment]) are restored verbatim
// only with opts.HostScope (and a warning), otherwise not at all, with an
// error wrapping [ErrHostScopedCaps].
//
// A member that cannot be restored is passed to opts.Error and counted in
// [RestoreSummary.Failures]; the rest of the archive is still restored.
// The error returned is about the whole restore: an unreadable, truncated
// or refused archive, a cancelled ctx, or an error returned by opts.Error.
func Restore(ctx context.Context, r io.Reader, dest string, opts RestoreOptions) (RestoreSummary, error) {
	opts.ApplyDefaults()
	ar, err := tarfmt.NewReader(r)
	if err != nil {
		return RestoreSummary{}, err
	}
	defer ar.Close()
	m, err := newRestoreMapping(ar, &opts)
	if err != nil {
		return RestoreSummary{}, err
	}
	if err := m.checkFirst(ar); err != nil {
		return RestoreSummary{}, err
	}
	sel, err := newSelection(opts.Paths)
	if err != nil {
		return RestoreSummary{}, err
	}
	// The state directory first: a restore that cannot keep its state
	// does not start (nor create dest).
	sdir, sdirPath, err := jobstate.DirFor(opts.StateDir, "restore", true)
	if err != nil {
		return RestoreSummary{}, err
	}
	d, err := openDest(dest, true)
	if err != nil {
		unix.Close(sdir)
		return RestoreSummary{}, err
	}
	defer d.Close()
	rs := &restorer{d: d, top: d, opts: &opts, m: m, ar: ar, sel: sel, inflight: map[string]hold{}, seed: maphash.MakeSeed()}
	rs.budget.cond = sync.NewCond(&rs.budget.mu)
	if err := rs.begin(sdir, sdirPath); err != nil {
		return RestoreSummary{}, err
	}
	err = rs.run(ctx)
	if rs.staging != "" {
		if cerr := rs.commit(); err == nil {
			err = cerr
		}
	}
	sum := rs.summary()
	// Every temporary name is gone unless the process dies: the state
	// goes too, even after an error.
	if eerr := rs.end(); err == nil {
		err = eerr
	}
	// Emptying and removing the staging directory changed the
	// destination's times: set them again when the archive has them.
	for _, dd := range rs.dirs {
		if dd.name == "." {
			if ferr := rs.finishDir(dd); ferr != nil && err == nil {
				err = ferr
			}
		}
	}
	if err == nil {
		err = sel.missing()
	}
	opts.Reporter.Finish(sum)
	return sum, err
}

// restorer is the state of one [Restore].
type restorer struct {
	d    *destDir
	opts *RestoreOptions
	m    restoreMapping
	ar   *tarfmt.Reader
	sel  *selection // RestoreOptions.Paths (reading goroutine only)

	xattrsMu      sync.Mutex
	xattrsSkipped map[string]int64 // left out by the xattrs policy

	dirs []deferredDir // directories whose mode and times are set last
	// direct is set when the destination was empty: files are created
	// under their names in d (see begin).
	direct bool
	// top is the destination; d is the staging directory in it while
	// staging is set (see begin), top otherwise.
	top     *destDir
	staging string
	// root is the archive's "." member, applied to top by commit.
	root *rootEntry
	// state is the restore's state file (see begin); keepState is set
	// when the staging directory could not be removed.
	state     *restoreState
	keepState bool

	jobs []chan []*fileJob // one per worker: a directory's files go to one worker
	// batch and batchBytes gather the next files of each worker (reader
	// goroutine only).
	batch      [][]*fileJob
	batchBytes []int64
	wg         sync.WaitGroup
	pending    sync.WaitGroup // jobs sent and not finished

	inflightMu sync.Mutex
	inflight   map[string]hold // names held by workers
	seed       maphash.Seed    // spreads directories over the workers

	abortMu sync.Mutex
	abort   error // set when opts.Error returned an error

	budget struct {
		mu   sync.Mutex
		cond *sync.Cond
		used int64
	}

	files, dirsN, links, others, skipped, bytes, caps, failures, warnings atomic.Int64
}

// deferredDir is a directory whose mode and times wait for its contents.
type deferredDir struct {
	name   string
	mode   uint32
	times  [2]unix.Timespec
	defACL []byte // system.posix_acl_default, set last
}

// fileJob is a small regular file, or a hardlink to a name a worker
// holds, handed to a worker.
type fileJob struct {
	e    *tarfmt.Entry
	meta entryMeta
	data []byte // nil for a hardlink
	link bool   // a hardlink to a name the worker holds
	held int64  // bytes of the in-flight budget it holds (data and metadata)
}

// hold counts the jobs handed to a worker that hold a name (the name they
// create, or the target of a hardlink). All the jobs holding a name are
// queued to one worker, which runs them in order.
type hold struct {
	n      int
	worker int
}

// entryMeta is the translated metadata of an entry.
type entryMeta struct {
	uid, gid int
	mode     uint32
	xattrs   []xattrKV
	caps     []byte
	times    [2]unix.Timespec
	sparse   bool // write runs of zeros as holes
	// refused is a part of the entry not restored (the rest is): a
	// host-scoped cap without HostScope. warn is a notice about a value
	// restored as asked but worth telling.
	refused, warn error
	// lacking is a cap of the archive that the restore does not write
	// under [archive.ForeignCapsFail] (Verify reports it missing from the tree).
	lacking []byte
}

// rootEntry is the archive's "." member, applied to the destination
// itself once a staging directory is emptied into it.
type rootEntry struct {
	e  *tarfmt.Entry
	mt entryMeta
}

// begin records the restore as running, first removing what a killed
// one left.
//
// The record is the restore's state file (see restoreState), outside the
// destination: the destination may be the rootfs of a running container
// whose root can write there, and nothing it plants may pass for it. It
// is locked while the restore runs. When it records a restore that did
// not end, begin removes the staging directories it names (those that are
// the caller's directories) and the temporary names that carry one of
// the tokens it records, and nothing else. Then it records the token of
// this restore's temporary names, before any exists.
//
// Into an empty destination, the archive is extracted into a staging
// directory made for it directly in the destination (stagingPrefix, mode
// 0700), its files created directly under their names there: no
// O_TMPFILE inode and link per file (on ext4 the orphan list and the
// extra directory operation cost about a third of a small file's
// restore), yet nothing is under its final name before it is complete:
// commit renames the finished top-level entries into the destination.
// The state records the staging directory's name before it is made; a
// restore that finds it removes it (the top-level entries already renamed
// are complete, and are handled by the overwrite policy like any existing
// entry).
//
// With opts.Direct and an empty destination, files are created directly
// under their final names instead. The state then says "direct": until it
// is gone, the whole destination is the incomplete output of one restore,
// and a restore that finds such a state (the previous one was killed)
// trusts nothing it finds there and replaces every member whatever the
// overwrite policy. Either way, no restore that finishes leaves a partial
// file under a final name, and [Verify] reports the state of a restore
// that did not end, and the staging directory it left.
//
// begin takes over sdir, the state directory (its path is sdirPath).
func (rs *restorer) begin(sdir int, sdirPath string) (err error) {
	st, err := openRestoreState(sdir, sdirPath, rs.d)
	if err != nil {
		return err
	}
	keep := st.resumed // what the killed restore left may still be there
	defer func() {
		if err != nil {
			_ = st.Close(!keep) // the error of begin is the one to report
		}
	}()
	rs.d.token = newToken()
	if st.resumed {
		if st.direct {
			rs.opts.Overwrite = OverwriteAlways
		}
		if err := rs.d.removeStaging(st.staging); err != nil {
			return fmt.Errorf("clean up an interrupted restore: %w", err)
		}
		if err := rs.d.sweepTmp(st.tokens); err != nil {
			return fmt.Errorf("clean up an interrupted restore: %w", err)
		}
	}
	if err := st.record("token " + rs.d.token); err != nil {
		return err
	}
	empty, err := rs.d.isEmpty()
	if err != nil {
		return err
	}
	switch {
	case !empty && rs.opts.Direct && (!st.resumed || !st.direct):
		return fmt.Errorf("%s: %w", rs.d.display("."), ErrDirectNotEmpty)
	case !empty:
	case !st.resumed && rs.opts.Direct:
		if err := st.record("direct"); err != nil {
			return err
		}
		rs.direct = true
	default:
		if err := rs.beginStaging(st, &keep); err != nil {
			return err
		}
	}
	rs.state = st
	return nil
}

// beginStaging makes the staging directory of a restore into an empty
// destination (see begin), recorded in st first. keep is set when a
// staging directory is left after an error.
func (rs *restorer) beginStaging(st *restoreState, keep *bool) error {
	// The state names the staging directory before it exists: a kill
	// in between leaves no staging directory the next restore would not
	// look for.
	name := stagingName()
	if err := st.record("staging " + name); err != nil {
		return err
	}
	if err := unix.Mkdirat(rs.d.fd, name, 0o700); err != nil {
		return rs.d.pathErr("mkdir", name, err)
	}
	undo := func() {
		if err := unix.Unlinkat(rs.d.fd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
			*keep = true
		}
	}
	sd, err := rs.d.staging(name)
	if err != nil {
		undo()
		return err
	}
	// The staging directory inherited DEST's default ACL, if any, which
	// every entry made in it would inherit in turn: the archive alone
	// says what ACLs its entries have (GNU tar into a new directory
	// gives the same result).
	if err := unix.Removexattr(procPath(sd.fd), archive.XattrACLDefault); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.EOPNOTSUPP) {
		sd.Close()
		undo()
		return rs.d.pathErr("removexattr "+archive.XattrACLDefault, name, err)
	}
	rs.d, rs.staging, rs.direct = sd, name, true
	return nil
}

// commit moves the top-level entries of the staging directory into the
// destination (renameat2 RENAME_NOREPLACE: one that appeared there
// meanwhile is a failure, never replaced), removes the staging directory
// and applies the archive's "." member to the destination (after the
// renames, which change its times). It runs even after an error: every
// file in the staging directory is complete.
func (rs *restorer) commit() error {
	st := rs.d
	rs.d = rs.top
	defer st.Close()
	fd, err := unix.Openat(st.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		rs.keepState = true
		return rs.top.pathErr("open", rs.staging, err)
	}
	dir := os.NewFile(uintptr(fd), rs.staging)
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		rs.keepState = true
		return rs.top.pathErr("readdir", rs.staging, err)
	}
	for _, name := range names {
		if TestHookCommit != nil {
			TestHookCommit(name)
		}
		err := unix.Renameat2(st.fd, name, rs.top.fd, name, unix.RENAME_NOREPLACE)
		if errors.Is(err, unix.EINVAL) {
			// No RENAME_NOREPLACE on this filesystem.
			if _, serr := lstatAt(rs.top.fd, name); errors.Is(serr, unix.ENOENT) {
				err = unix.Renameat(st.fd, name, rs.top.fd, name)
			}
		}
		if err != nil {
			rs.fail(name, rs.top.pathErr("rename", name, err))
		}
	}
	// Empty unless a rename failed. The name is removed only while it is
	// the staging directory: the container may have renamed that one
	// away and put its own in its place.
	var a unix.Stat_t
	if err := unix.Fstat(st.fd, &a); err != nil {
		rs.keepState = true
		return rs.top.pathErr("fstat", rs.staging, err)
	}
	b, err := lstatAt(rs.top.fd, rs.staging)
	switch {
	case errors.Is(err, unix.ENOENT): // removed already (empty, by the container)
	case err != nil:
		rs.fail(rs.staging, rs.top.pathErr("lstat", rs.staging, err))
	case a.Dev != b.Dev || a.Ino != b.Ino:
		rs.fail(rs.staging, rs.top.pathErr("remove", rs.staging, ErrStagingReplaced))
	default:
		if err := rs.top.removeTree(rs.staging); err != nil {
			rs.keepState = true
			return err
		}
	}
	rs.staging = ""
	if rs.root != nil {
		if err := rs.dir(nil, rs.root.e, rs.root.mt); err != nil {
			rs.fail(".", err)
		}
	}
	return nil
}

// TestHookCommit, when set (by tests only), is called before each
// top-level entry is renamed out of the staging directory.
var TestHookCommit func(name string)

// ErrStagingReplaced is the staging directory of a restore found
// replaced by another directory when the restore was done with it (a
// concurrent writer in DEST renamed it away): what is under its name is
// not the restore's, and is left in place.
var ErrStagingReplaced = errors.New("backup: staging directory replaced while restored (a concurrent writer in DEST)")

// end removes the restore's state, and releases it: every temporary name
// of the restore is gone, and its staging directory unless keepState.
func (rs *restorer) end() error {
	return rs.state.Close(!rs.keepState)
}

func (rs *restorer) summary() RestoreSummary {
	return RestoreSummary{
		Files: rs.files.Load(), Dirs: rs.dirsN.Load(), Links: rs.links.Load(), Others: rs.others.Load(),
		Skipped: rs.skipped.Load(), Bytes: rs.bytes.Load(), Caps: rs.caps.Load(), Failures: rs.failures.Load(),
		Warnings: rs.warnings.Load(), XattrsSkipped: rs.xattrsSkipped,
	}
}

// warn reports a notice about an entry restored as asked.
func (rs *restorer) warn(name string, err error) {
	rs.warnings.Add(1)
	if rs.opts.Warn != nil {
		rs.opts.Warn(rs.d.display(name), err)
		return
	}
	if aerr := rs.opts.Error(rs.d.display(name), err); aerr != nil {
		rs.abortMu.Lock()
		if rs.abort == nil {
			rs.abort = aerr
		}
		rs.abortMu.Unlock()
	}
}

// fail reports a per-entry error.
func (rs *restorer) fail(name string, err error) {
	rs.failures.Add(1)
	if aerr := rs.opts.Error(rs.d.display(name), err); aerr != nil {
		rs.abortMu.Lock()
		if rs.abort == nil {
			rs.abort = aerr
		}
		rs.abortMu.Unlock()
	}
}

func (rs *restorer) aborted() error {
	rs.abortMu.Lock()
	defer rs.abortMu.Unlock()
	return rs.abort
}

// run reads the archive and restores each member.
func (rs *restorer) run(ctx context.Context) error {
	rs.jobs = make([]chan []*fileJob, rs.opts.Workers)
	rs.batch = make([][]*fileJob, rs.opts.Workers)
	rs.batchBytes = make([]int64, rs.opts.Workers)
	for i := range rs.jobs {
		rs.jobs[i] = make(chan []*fileJob, 4)
		rs.wg.Add(1)
		go rs.worker(rs.jobs[i])
	}
	pc := &parentCache{d: rs.d}
	err := rs.loop(ctx, pc)
	rs.flushAll()
	for _, c := range rs.jobs {
		close(c)
	}
	rs.wg.Wait()
	pc.drop()
	// Directory modes and times, deepest last-seen first, even after an
	// error: what was restored is left as complete as it can be.
	for i := len(rs.dirs) - 1; i >= 0; i-- {
		dd := rs.dirs[i]
		if ferr := rs.finishDir(dd); ferr != nil {
			rs.fail(dd.name, ferr)
		}
	}
	if err == nil {
		err = rs.aborted()
	}
	return err
}

func (rs *restorer) loop(ctx context.Context, pc *parentCache) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := rs.aborted(); err != nil {
			return err
		}
		e, err := rs.ar.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		var ee *tarfmt.EntryError
		if errors.As(err, &ee) {
			rs.fail(e.Header.Name, err)
			continue
		}
		if err != nil {
			return err
		}
		if !rs.sel.match(e.Name, e.Header.Typeflag == tar.TypeDir) {
			continue
		}
		if err := rs.entry(e, pc); err != nil {
			if isArchiveError(err) || errors.Is(err, ErrRawArchive) {
				return err
			}
			rs.fail(e.Name, err)
		}
	}
}

// archiveReadError marks an error reading the archive (as opposed to
// writing the tree): it ends the restore.
type archiveReadError struct{ err error }

func (e *archiveReadError) Error() string { return "read archive: " + e.err.Error() }
func (e *archiveReadError) Unwrap() error { return e.err }

func isArchiveError(err error) bool {
	var ae *archiveReadError
	return errors.As(err, &ae)
}

// meta translates the metadata of e.
func (rs *restorer) meta(e *tarfmt.Entry) (entryMeta, error) {
	h := e.Header
	var mt entryMeta
	var err error
	if mt.uid, mt.gid, err = rs.m.owner(h.Uid, h.Gid); err != nil {
		if rerr := rs.m.rawOwner(h.Name, h.Uid, h.Gid, false); rerr != nil {
			return mt, rerr
		}
		return mt, err
	}
	mt.mode = uint32(h.Mode) & 0o7777
	var hostScoped bool
	var foreign error
	var skipped []string
	if mt.xattrs, mt.caps, hostScoped, foreign, skipped, err = rs.m.entryXattrs(e); err != nil {
		return mt, err
	}
	if len(skipped) > 0 {
		rs.xattrsMu.Lock()
		if rs.xattrsSkipped == nil {
			rs.xattrsSkipped = map[string]int64{}
		}
		for _, n := range skipped {
			rs.xattrsSkipped[n]++
		}
		rs.xattrsMu.Unlock()
	}
	for _, x := range mt.xattrs {
		if x.name == archive.XattrACLAccess && h.Typeflag != tar.TypeSymlink {
			// Setting the ACL sets these bits; so must the chmod
			// (directories get theirs last, after the ACL).
			mt.mode = xattrfmt.ACLMode(x.value, mt.mode)
		}
	}
	if err := rs.foreignCaps(&mt, hostScoped, foreign); err != nil {
		return mt, err
	}
	mt.times = timespecs(h.AccessTime, h.ModTime)
	mt.sparse = rs.opts.Sparse || tarfmt.IsSparseMember(h)
	return mt, nil
}

// foreignCaps applies [RestoreOptions.ForeignCaps] to caps the target
// cannot hold as translated: caps the backup kept host-scoped, and caps
// whose rootid the target maps do not cover (foreign, their error). Under
// skip the file is restored without them, under host with the archive's
// value (host-scoped), each with a warning; under fail a host-scoped cap
// is left out and the entry counted as failed, and a foreign cap fails
// the entry (the error returned). mt.lacking records a cap not written.
func (rs *restorer) foreignCaps(mt *entryMeta, hostScoped bool, foreign error) error {
	if !hostScoped && foreign == nil {
		return nil
	}
	policy := rs.opts.ForeignCaps
	if hostScoped && rs.opts.HostScope && policy == archive.ForeignCapsFail {
		policy = archive.ForeignCapsHost // --host-scope: written verbatim
	}
	text := capsText(mt.caps)
	why := "the backup kept it host-scoped"
	if foreign != nil {
		why = foreign.Error()
	}
	switch policy {
	case archive.ForeignCapsHost:
		mt.warn = fmt.Errorf("xattr %s: host-scoped capability %s restored verbatim (%s)", archive.XattrCaps, text, why)
		return nil
	case archive.ForeignCapsSkip:
		mt.warn = fmt.Errorf("xattr %s: capability %s not restored (--foreign-caps skip; %s)", archive.XattrCaps, text, why)
		mt.caps = nil
		return nil
	case archive.ForeignCapsFail:
	}
	mt.lacking = mt.caps
	mt.caps = nil
	if foreign != nil {
		return fmt.Errorf("xattr %s: %w", archive.XattrCaps, foreign)
	}
	mt.refused = fmt.Errorf("xattr %s: %s: %w", archive.XattrCaps, text, ErrHostScopedCaps)
	return nil
}

// entry restores one member (in the reading goroutine).
func (rs *restorer) entry(e *tarfmt.Entry, pc *parentCache) error {
	h := e.Header
	mt, err := rs.meta(e)
	if err != nil {
		return err
	}
	if mt.refused != nil {
		rs.fail(e.Name, mt.refused)
	}
	if mt.warn != nil {
		rs.warn(e.Name, mt.warn)
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont: // archive/tar turns TypeRegA into TypeReg
		if h.Size < 0 {
			return fmt.Errorf("negative size %d", h.Size)
		}
		if h.Size <= restoreSmallFile {
			return rs.dispatch(e, mt)
		}
		rs.waitFor(e.Name, -1) // an earlier member of that name is written first
		return rs.writeFile(pc, e, mt, rs.ar)
	case tar.TypeDir:
		rs.waitFor(e.Name, -1) // a worker may hold a file of that name
		return rs.dir(pc, e, mt)
	case tar.TypeLink:
		if w, ok := rs.holder(e.Link); ok {
			// Its target is not written yet: the worker that writes it
			// makes the link next.
			rs.waitFor(e.Name, w) // a worker may hold a file of that name
			cost := metaCost(e, mt)
			rs.acquire(cost)
			rs.queue(w, &fileJob{e: e, meta: mt, link: true, held: cost}, 0)
			return nil
		}
		rs.waitFor(e.Name, -1) // a worker may hold a file of that name
		return rs.special(pc, e, mt)
	case tar.TypeSymlink, tar.TypeFifo, tar.TypeChar, tar.TypeBlock:
		rs.waitFor(e.Name, -1) // a worker may hold a file of that name
		if len(mt.caps) > 0 {
			rs.fail(e.Name, fmt.Errorf("xattr %s: %w", archive.XattrCaps, ErrCapsNotRegular))
			mt.caps = nil
		}
		return rs.special(pc, e, mt)
	default:
		return fmt.Errorf("member type %q not supported", h.Typeflag)
	}
}

// dispatch reads a small file into memory and hands it to a worker.
func (rs *restorer) dispatch(e *tarfmt.Entry, mt entryMeta) error {
	size := e.Header.Size
	cost := size + metaCost(e, mt)
	rs.acquire(cost)
	data := getBuf(size)
	if _, err := io.ReadFull(rs.ar, data); err != nil {
		putBuf(data)
		rs.release(cost)
		return &archiveReadError{fmt.Errorf("%s: %w", e.Header.Name, noEOF(err))}
	}
	// Creating a file takes its directory's lock: files of one directory
	// go to one worker, different directories are filled in parallel.
	dir, _ := path.Split(e.Name)
	w := int(maphash.String(rs.seed, dir) % uint64(len(rs.jobs)))
	rs.waitFor(e.Name, w) // two members of one name: keep their order
	rs.queue(w, &fileJob{e: e, meta: mt, data: data, held: cost}, cost)
	return nil
}

// metaCost is the memory a queued member holds besides its data: its
// header's pax records (up to archive/tar's 1 MiB), their decoded xattrs
// and the translated copies. A member with huge headers and no data must
// count against the in-flight budget like a large file.
func metaCost(e *tarfmt.Entry, mt entryMeta) int64 {
	n := int64(512 + len(e.Header.Name) + len(e.Header.Linkname))
	for k, v := range e.Header.PAXRecords {
		n += int64(len(k) + len(v) + 64) // 64: a map entry
	}
	for k, v := range e.Xattrs {
		n += int64(len(k) + len(v) + 64)
	}
	for _, x := range mt.xattrs {
		n += int64(len(x.name) + len(x.value) + 48)
	}
	return n + int64(len(mt.caps))
}

// queue hands job j to worker w, which holds the names of j from now on
// until it is done with it.
func (rs *restorer) queue(w int, j *fileJob, size int64) {
	rs.inflightMu.Lock()
	for _, name := range j.names() {
		if name != "" {
			rs.inflight[name] = hold{n: rs.inflight[name].n + 1, worker: w}
		}
	}
	rs.inflightMu.Unlock()
	rs.pending.Add(1)
	rs.batch[w] = append(rs.batch[w], j)
	rs.batchBytes[w] += size
	if len(rs.batch[w]) >= restoreBatch || rs.batchBytes[w] >= restoreBatchBytes {
		rs.flush(w)
	}
}

// names returns the names job j holds: the one it creates and, for a
// hardlink, its target ("" for a file).
func (j *fileJob) names() [2]string {
	if j.link {
		return [2]string{j.e.Name, j.e.Link}
	}
	return [2]string{j.e.Name}
}

// holder returns the worker that holds name, if one does.
func (rs *restorer) holder(name string) (int, bool) {
	rs.inflightMu.Lock()
	defer rs.inflightMu.Unlock()
	h, ok := rs.inflight[name]
	return h.worker, ok
}

// flush hands the files gathered for worker i to it. Files go in batches:
// one channel operation, and one wake-up of the worker, per batch rather
// than per file.
func (rs *restorer) flush(i int) {
	if len(rs.batch[i]) == 0 {
		return
	}
	rs.jobs[i] <- rs.batch[i]
	rs.batch[i], rs.batchBytes[i] = nil, 0
}

// flushAll flushes every worker's batch: before waiting for the workers,
// and at the end.
func (rs *restorer) flushAll() {
	for i := range rs.batch {
		rs.flush(i)
	}
}

// waitFor waits for the workers when one of them other than worker w
// holds the name (w < 0: any of them). Worker w runs its jobs in order:
// a job queued to it after those holding the name runs after them.
func (rs *restorer) waitFor(name string, w int) {
	if h, ok := rs.holder(name); ok && h != w {
		rs.flushAll()
		rs.pending.Wait()
	}
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

func (rs *restorer) acquire(n int64) {
	b := &rs.budget
	b.mu.Lock()
	if b.used > 0 && b.used+n > restoreInflight {
		// The memory held may be in batches not handed out yet.
		b.mu.Unlock()
		rs.flushAll()
		b.mu.Lock()
	}
	for b.used > 0 && b.used+n > restoreInflight {
		b.cond.Wait()
	}
	b.used += n
	b.mu.Unlock()
}

func (rs *restorer) release(n int64) {
	b := &rs.budget
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}

// bufPools recycle the buffers of small files, one pool per power of two
// from 512 bytes to restoreSmallFile: a restore passes hundreds of
// megabytes through them, and as fresh allocations they would cost
// garbage collections, zeroed pages and their return to the kernel.
var bufPools [bufClasses]sync.Pool

const (
	bufMinShift = 9
	bufClasses  = 18 - bufMinShift + 1 // 1<<18 == restoreSmallFile
)

// bufClass returns the pool of buffers of at least n bytes (n <=
// restoreSmallFile).
func bufClass(n int64) int {
	return max(bits.Len64(uint64(n-1))-bufMinShift, 0)
}

// getBuf returns a buffer of n bytes, to be given back with putBuf.
func getBuf(n int64) []byte {
	if n == 0 {
		return nil
	}
	c := bufClass(n)
	if b, ok := bufPools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<(bufMinShift+c))
}

// putBuf gives back a buffer of getBuf.
func putBuf(b []byte) {
	if cap(b) == 0 {
		return
	}
	b = b[:cap(b)]
	bufPools[bufClass(int64(cap(b)))].Put(&b)
}

func (rs *restorer) worker(jobs <-chan []*fileJob) {
	defer rs.wg.Done()
	pc := &parentCache{d: rs.d}
	defer pc.drop()
	for batch := range jobs {
		for _, j := range batch {
			rs.job(pc, j)
		}
	}
}

// job restores one small file, or makes one hardlink, of a batch.
func (rs *restorer) job(pc *parentCache, j *fileJob) {
	var err error
	if j.link {
		err = rs.special(pc, j.e, j.meta)
	} else {
		err = rs.writeSmall(pc, j.e, j.meta, j.data)
		putBuf(j.data)
	}
	rs.release(j.held)
	if err != nil {
		rs.fail(j.e.Name, err)
	}
	rs.inflightMu.Lock()
	for _, name := range j.names() {
		if name == "" {
			continue
		}
		h := rs.inflight[name]
		if h.n--; h.n <= 0 {
			delete(rs.inflight, name)
		} else {
			rs.inflight[name] = h
		}
	}
	rs.inflightMu.Unlock()
	rs.pending.Done()
}

// parent returns the directory (from pc) and the base name under which
// member e (not ".") goes.
func (rs *restorer) parent(pc *parentCache, e *tarfmt.Entry) (dirfd int, base string, err error) {
	if e.Name == "." {
		return -1, "", fmt.Errorf("a %s cannot replace the destination directory", typeName(e.Header.Typeflag))
	}
	dir, base := path.Split(e.Name)
	dirfd, err = pc.get(cleanDir(dir))
	return dirfd, base, err
}

// existing looks at what base in dirfd holds now: kept is true when the
// overwrite policy keeps it in place of e (then counted and reported).
func (rs *restorer) existing(dirfd int, base string, e *tarfmt.Entry) (st unix.Stat_t, exists, kept bool) {
	st, err := lstatAt(dirfd, base)
	if err != nil {
		return st, false, false
	}
	if rs.keep(e, &st) {
		rs.skipped.Add(1)
		rs.opts.Reporter.CompleteItem(rs.d.display(e.Name), ActionKept, e.Header.Size)
		return st, true, true
	}
	return st, true, false
}

// keep reports whether the overwrite policy keeps the existing st in
// place of e.
func (rs *restorer) keep(e *tarfmt.Entry, st *unix.Stat_t) bool {
	switch rs.opts.Overwrite {
	case OverwriteNever:
		return true
	case OverwriteIfChanged:
		return st.Mode&unix.S_IFMT == unix.S_IFREG && e.Header.Typeflag != tar.TypeDir &&
			st.Size == e.Header.Size && st.Mtim.Sec == e.Header.ModTime.Unix()
	case OverwriteAlways:
		return false
	}
	return false
}

// writeSmall restores a regular file whose data is in memory. In direct
// mode (an empty destination) it is created under its final name, with
// raw system calls: open, write, owner, mode, xattrs, caps, times, close.
func (rs *restorer) writeSmall(pc *parentCache, e *tarfmt.Entry, mt entryMeta, data []byte) error {
	if !rs.direct || mt.sparse {
		return rs.writeFile(pc, e, mt, bytes.NewReader(data))
	}
	dirfd, base, err := rs.parent(pc, e)
	if err != nil {
		return err
	}
	fd, err := unix.Openat(dirfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EEXIST) {
		// A second member of that name: replace it the careful way.
		return rs.writeFile(pc, e, mt, bytes.NewReader(data))
	}
	if err != nil {
		return rs.d.pathErr("create", e.Name, err)
	}
	err = writeAll(fd, data)
	if err != nil {
		err = rs.d.pathErr("write", e.Name, err)
	} else {
		err = rs.applyFd(fd, e.Name, mt)
	}
	if cerr := rawErr(unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)); err == nil && cerr != nil {
		err = rs.d.pathErr("close", e.Name, cerr)
	}
	if err != nil {
		// Never leave it half made under its name.
		_ = unix.Unlinkat(dirfd, base, 0)
		return err
	}
	rs.files.Add(1)
	rs.bytes.Add(int64(len(data)))
	rs.opts.Reporter.CompleteItem(rs.d.display(e.Name), ActionRestored, int64(len(data)))
	return nil
}

// writeAll writes data (at most restoreSmallFile bytes, into the page
// cache) to fd, with raw system calls (see rawErr).
func writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, _, e := unix.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(&data[0])), uintptr(len(data)))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		data = data[n:]
	}
	return nil
}

// writeFile restores a regular file whose data is read from data.
func (rs *restorer) writeFile(pc *parentCache, e *tarfmt.Entry, mt entryMeta, data io.Reader) (err error) {
	dirfd, base, err := rs.parent(pc, e)
	if err != nil {
		return err
	}
	_, exists, kept := rs.existing(dirfd, base, e)
	if kept {
		return nil
	}
	f, tmp, err := rs.d.createTmpfile(dirfd)
	if err != nil {
		return rs.d.pathErr("create", e.Name, err)
	}
	// The file was written through f: its close can report a failed
	// write-back (NFS, a full quota), which fails the entry.
	defer func() {
		if cerr := f.Close(); cerr != nil && err == nil {
			var pe *os.PathError
			if errors.As(cerr, &pe) {
				cerr = pe.Err
			}
			err = rs.d.pathErr("close", e.Name, cerr)
		}
	}()
	placed := false
	if tmp != "" {
		defer func() {
			if !placed {
				_ = unix.Unlinkat(dirfd, tmp, 0)
			}
		}()
	}
	var n int64
	if mt.sparse {
		n, err = copySparse(f, data, e.Header.Size)
	} else {
		n, err = io.Copy(f, data)
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			return rs.d.pathErr("write", e.Name, pe.Err)
		}
		return &archiveReadError{fmt.Errorf("%s: %w", e.Header.Name, noEOF(err))}
	}
	if n != e.Header.Size {
		return &archiveReadError{fmt.Errorf("%s: %w", e.Header.Name, io.ErrUnexpectedEOF)}
	}
	fd := int(f.Fd())
	if err := rs.applyFd(fd, e.Name, mt); err != nil {
		return err
	}
	switch {
	case tmp != "":
		err = place(dirfd, tmp, base)
	case !exists:
		err = rs.d.linkTmpfile(f, dirfd, base)
		if errors.Is(err, unix.EEXIST) {
			exists = true
		}
	}
	if exists && tmp == "" {
		t := rs.d.tmpName()
		if err = rs.d.linkTmpfile(f, dirfd, t); err == nil {
			err = place(dirfd, t, base)
		}
	}
	if err != nil {
		return rs.d.pathErr("link", e.Name, err)
	}
	placed = true
	rs.files.Add(1)
	rs.bytes.Add(n)
	rs.opts.Reporter.CompleteItem(rs.d.display(e.Name), ActionRestored, n)
	return nil
}

// applyFd gives the open inode fd its owner, mode, xattrs, caps and times,
// in that order: chown clears the setuid bits and the caps, and caps must
// be written last.
func (rs *restorer) applyFd(fd int, name string, mt entryMeta) error {
	if err := rawErr(unix.RawSyscall(unix.SYS_FCHOWN, uintptr(fd), uintptr(mt.uid), uintptr(mt.gid))); err != nil {
		return rs.d.pathErr("chown", name, err)
	}
	if err := rawErr(unix.RawSyscall(unix.SYS_FCHMOD, uintptr(fd), uintptr(mt.mode), 0)); err != nil {
		return rs.d.pathErr("chmod", name, err)
	}
	for _, x := range mt.xattrs {
		if err := unix.Fsetxattr(fd, x.name, x.value, 0); err != nil {
			return rs.d.pathErr("setxattr "+x.name, name, err)
		}
	}
	if len(mt.caps) > 0 {
		if err := unix.Fsetxattr(fd, archive.XattrCaps, mt.caps, 0); err != nil {
			return rs.d.pathErr("setxattr "+archive.XattrCaps, name, err)
		}
		rs.caps.Add(1)
	}
	ts := mt.times
	if err := rawErr(unix.RawSyscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)); err != nil {
		return rs.d.pathErr("utimensat", name, err)
	}
	return nil
}

// rawErr turns the result of a raw system call into an error.
//
// The inode operations of a restore (fchown, fchmod, utimensat, close of
// a file just written) only change in-memory metadata and return in
// microseconds: they are made with RawSyscall, which does not tell the Go
// scheduler about them. Through syscall.Syscall, each would let the
// runtime hand the processor to another thread when it lasts a little,
// and a restore makes a million of them: measured, about a third of the
// system time went to the scheduler's futex wake-ups and sleeps.
func rawErr(_, _ uintptr, e unix.Errno) error {
	if e != 0 {
		return e
	}
	return nil
}

// cleanDir turns path.Split's directory into a name for openDir.
func cleanDir(dir string) string {
	if dir == "" {
		return "."
	}
	return path.Clean(dir)
}

// dir restores a directory: created now (mode 0700 until its contents are
// in), owner and xattrs now, mode and times at the end.
func (rs *restorer) dir(pc *parentCache, e *tarfmt.Entry, mt entryMeta) error {
	if e.Name == "." && rs.staging != "" {
		rs.root = &rootEntry{e: e, mt: mt} // for the destination, by commit
		return nil
	}
	var fd int
	existed := true
	if e.Name == "." {
		var err error
		if fd, err = unix.Openat(rs.d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			return rs.d.pathErr("open", ".", err)
		}
	} else {
		dir, base := path.Split(e.Name)
		dirfd, err := pc.get(cleanDir(dir))
		if err != nil {
			return err
		}
		st, serr := lstatAt(dirfd, base)
		exists := serr == nil
		if exists && st.Mode&unix.S_IFMT == unix.S_IFDIR && rs.opts.Overwrite == OverwriteNever {
			rs.skipped.Add(1)
			return nil
		}
		if exists && st.Mode&unix.S_IFMT != unix.S_IFDIR {
			if rs.keep(e, &st) {
				rs.skipped.Add(1)
				return nil
			}
			if err := unix.Unlinkat(dirfd, base, 0); err != nil {
				return rs.d.pathErr("unlink", e.Name, err)
			}
			exists = false
		}
		existed = exists
		if !exists {
			if err := unix.Mkdirat(dirfd, base, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
				return rs.d.pathErr("mkdir", e.Name, err)
			}
		}
		if fd, err = openat2(dirfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0); err != nil {
			return rs.d.pathErr("open", e.Name, err)
		}
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, mt.uid, mt.gid); err != nil {
		return rs.d.pathErr("chown", e.Name, err)
	}
	// A default ACL is inherited by what is created in the directory:
	// it is set last, with the mode, so that the members get exactly the
	// ACLs the archive gives them (one left by an earlier restore goes
	// until then).
	var defACL []byte
	if existed {
		if err := unix.Fremovexattr(fd, archive.XattrACLDefault); err != nil && !errors.Is(err, unix.ENODATA) && !errors.Is(err, unix.EOPNOTSUPP) {
			return rs.d.pathErr("removexattr "+archive.XattrACLDefault, e.Name, err)
		}
	}
	for _, x := range mt.xattrs {
		if x.name == archive.XattrACLDefault {
			defACL = x.value
			continue
		}
		if err := unix.Fsetxattr(fd, x.name, x.value, 0); err != nil {
			return rs.d.pathErr("setxattr "+x.name, e.Name, err)
		}
	}
	if len(mt.caps) > 0 {
		if err := unix.Fsetxattr(fd, archive.XattrCaps, mt.caps, 0); err != nil {
			return rs.d.pathErr("setxattr "+archive.XattrCaps, e.Name, err)
		}
		rs.caps.Add(1)
	}
	rs.dirs = append(rs.dirs, deferredDir{name: e.Name, mode: mt.mode, times: mt.times, defACL: defACL})
	rs.dirsN.Add(1)
	rs.opts.Reporter.CompleteItem(rs.d.display(e.Name), ActionRestored, 0)
	return nil
}

// finishDir sets the mode and times of a directory.
func (rs *restorer) finishDir(dd deferredDir) error {
	var fd int
	var err error
	if dd.name == "." {
		fd, err = unix.Openat(rs.d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		fd, err = openat2(rs.d.fd, dd.name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return rs.d.pathErr("open", dd.name, err)
	}
	defer unix.Close(fd)
	if dd.defACL != nil {
		if err := unix.Fsetxattr(fd, archive.XattrACLDefault, dd.defACL, 0); err != nil {
			return rs.d.pathErr("setxattr "+archive.XattrACLDefault, dd.name, err)
		}
	}
	if err := unix.Fchmod(fd, dd.mode); err != nil {
		return rs.d.pathErr("chmod", dd.name, err)
	}
	if err := futimens(fd, dd.times); err != nil {
		return rs.d.pathErr("utimensat", dd.name, err)
	}
	return nil
}

// special restores a symlink, hardlink, fifo or device under a temporary
// name, then renames it into place.
func (rs *restorer) special(pc *parentCache, e *tarfmt.Entry, mt entryMeta) error {
	h := e.Header
	dirfd, base, err := rs.parent(pc, e)
	if err != nil {
		return err
	}
	st, exists, kept := rs.existing(dirfd, base, e)
	if kept {
		return nil
	}
	tmp := rs.d.tmpName()
	switch h.Typeflag {
	case tar.TypeLink:
		tdir, tbase := path.Split(e.Link)
		tfd, err := rs.d.openDir(cleanDir(tdir), false)
		if err != nil {
			return fmt.Errorf("hardlink target %s: %w", e.Link, err)
		}
		defer unix.Close(tfd)
		tst, err := lstatAt(tfd, tbase)
		if err != nil {
			return fmt.Errorf("hardlink target %s: %w", e.Link, rs.d.pathErr("lstat", e.Link, err))
		}
		if tst.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fmt.Errorf("hardlink target %s is a directory", e.Link)
		}
		if len(mt.xattrs) > 0 || len(mt.caps) > 0 {
			// bsdtar repeats the inode's xattrs on its hardlink members;
			// GNU tar and bsdtar both ignore them on extraction (the inode
			// got them with its first member). Same here, but a value
			// that differs from the inode's is reported, never dropped
			// silently.
			if w := linkXattrsDiffer(tfd, tbase, mt); w != "" {
				rs.warn(e.Name, fmt.Errorf("hardlink member carries xattrs that differ from those of its target %s (%s); the target's are kept, as GNU tar and bsdtar do", e.Link, w))
			}
		}
		if exists && st.Dev == tst.Dev && st.Ino == tst.Ino {
			rs.links.Add(1)
			return nil
		}
		if err := unix.Linkat(tfd, tbase, dirfd, tmp, 0); err != nil {
			return rs.d.pathErr("link", e.Name, err)
		}
		if err := place(dirfd, tmp, base); err != nil {
			return rs.d.pathErr("rename", e.Name, err)
		}
		rs.links.Add(1)
		rs.opts.Reporter.CompleteItem(rs.d.display(e.Name), ActionRestored, 0)
		return nil
	case tar.TypeSymlink:
		if err := unix.Symlinkat(h.Linkname, dirfd, tmp); err != nil {
			return rs.d.pathErr("symlink", e.Name, err)
		}
	default:
		mode := mt.mode
		switch h.Typeflag {
		case tar.TypeFifo:
			mode |= unix.S_IFIFO
		case tar.TypeChar:
			mode |= unix.S_IFCHR
		case tar.TypeBlock:
			mode |= unix.S_IFBLK
		}
		dev := unix.Mkdev(uint32(h.Devmajor), uint32(h.Devminor))
		if err := unix.Mknodat(dirfd, tmp, mode, int(dev)); err != nil {
			return rs.d.pathErr("mknod", e.Name, err)
		}
	}
	if TestHookSpecial != nil {
		TestHookSpecial(dirfd, tmp)
	}
	err = rs.applyAt(dirfd, tmp, e, mt)
	if err == nil {
		err = place(dirfd, tmp, base)
		if err != nil {
			err = rs.d.pathErr("rename", e.Name, err)
		}
	} else {
		_ = unix.Unlinkat(dirfd, tmp, 0)
	}
	if err != nil {
		return err
	}
	if h.Typeflag == tar.TypeSymlink {
		rs.links.Add(1)
	} else {
		rs.others.Add(1)
	}
	rs.opts.Reporter.CompleteItem(rs.d.display(e.Name), ActionRestored, 0)
	return nil
}

// TestHookSpecial, when set (by tests only), is called between the
// creation of a symlink, fifo or device under its temporary name and the
// first change of its metadata: a test swaps another object in there.
var TestHookSpecial func(dirfd int, tmp string)

// linkXattrsDiffer compares the translated xattrs of a hardlink member
// with those of its target name in tfd and describes the first difference
// ("" when none). Caps compare as capabilities.
func linkXattrsDiffer(tfd int, tbase string, mt entryMeta) string {
	pfd, err := unix.Openat(tfd, tbase, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return "target unreadable: " + err.Error()
	}
	defer unix.Close(pfd)
	p := procPath(pfd)
	if mt.caps != nil {
		got, err := getXattr(p, archive.XattrCaps)
		if err != nil && !errors.Is(err, unix.ENODATA) {
			return archive.XattrCaps + ": " + err.Error()
		}
		if !sameCaps(mt.caps, got) {
			return fmt.Sprintf("%s: member %s, target %s", archive.XattrCaps, capsText(mt.caps), capsText(got))
		}
	}
	for _, x := range mt.xattrs {
		got, err := getXattr(p, x.name)
		if err != nil || !bytes.Equal(got, x.value) {
			return x.name
		}
	}
	return ""
}

// applyAt gives the entry tmp in dirfd (a symlink, fifo or device the
// restore just made, not a regular file) its owner, mode, xattrs and
// times through a descriptor of the object itself: the directory may be
// writable by the container, which can swap another object, a symlink to
// a host file above all, in under the name at any time. The descriptor is
// opened without following, and must be what the restore made (its type,
// one link, owned by the restore) before anything is changed.
func (rs *restorer) applyAt(dirfd int, tmp string, e *tarfmt.Entry, mt entryMeta) error {
	pfd, err := unix.Openat(dirfd, tmp, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return rs.d.pathErr("open", e.Name, err)
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return rs.d.pathErr("fstat", e.Name, err)
	}
	if st.Mode&unix.S_IFMT != specialType(e.Header.Typeflag) || st.Nlink != 1 || st.Uid != uint32(unix.Geteuid()) {
		return rs.d.pathErr("restore", e.Name, ErrReplaced)
	}
	if err := unix.Fchownat(pfd, "", mt.uid, mt.gid, unix.AT_EMPTY_PATH); err != nil {
		return rs.d.pathErr("chown", e.Name, err)
	}
	// The magic link of an O_PATH descriptor leads to the inode itself,
	// even a symlink's, and no further.
	p := procPath(pfd)
	if e.Header.Typeflag != tar.TypeSymlink {
		if err := unix.Chmod(p, mt.mode); err != nil {
			return rs.d.pathErr("chmod", e.Name, err)
		}
	}
	for _, x := range mt.xattrs {
		if err := unix.Setxattr(p, x.name, x.value, 0); err != nil {
			return rs.d.pathErr("setxattr "+x.name, e.Name, err)
		}
	}
	ts := mt.times
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts[:], 0); err != nil {
		return rs.d.pathErr("utimensat", e.Name, err)
	}
	return nil
}

// ErrReplaced is an entry that something else replaced under the
// temporary name the restore had just made it under: nothing of it was
// changed, and it is not restored.
var ErrReplaced = errors.New("backup: entry replaced under its temporary name while restored (a concurrent writer in DEST)")

// specialType is the file type that special() makes for a member type.
func specialType(t byte) uint32 {
	switch t {
	case tar.TypeSymlink:
		return unix.S_IFLNK
	case tar.TypeFifo:
		return unix.S_IFIFO
	case tar.TypeChar:
		return unix.S_IFCHR
	case tar.TypeBlock:
		return unix.S_IFBLK
	}
	return 0
}

func typeName(t byte) string {
	switch t {
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeLink:
		return "hardlink"
	case tar.TypeFifo:
		return "fifo"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeDir:
		return "directory"
	}
	return "regular file"
}
