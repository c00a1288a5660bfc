//go:build linux

package restorer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"sync"
	"sync/atomic"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/jobstate"

	"github.com/nscap/nscap/internal/sys"

	"github.com/nscap/nscap/internal/tarfmt"
)

// ErrCapsNotRegular is a capability xattr on an archive member that is not
// a regular file or a directory (a symlink, a device): nscap never writes
// one there.
var ErrCapsNotRegular = errors.New("backup: capability on a member that is not a regular file")

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
// that differs from its target's is reported through opts.Reporter.Warn. Caps the
// backup kept host-scoped (the [HostScopedComment]) are restored verbatim
// only with opts.HostScope (and a warning), otherwise not at all, with an
// error wrapping [ErrHostScopedCaps].
//
// A member that cannot be restored is passed to opts.Reporter.Error and counted in
// [RestoreSummary.Failures]; the rest of the archive is still restored.
// The error returned is about the whole restore: an unreadable, truncated
// or refused archive, a cancelled ctx, or an error returned by opts.Reporter.Error.
func Restore(ctx context.Context, r io.Reader, dest string, opts RestoreOptions) (RestoreSummary, error) {
	opts.ApplyDefaults()
	ar, m, sel, err := openArchive(r, &opts, opts.Paths)
	if err != nil {
		return RestoreSummary{}, err
	}
	defer ar.Close()
	// The state directory first: a restore that cannot keep its state
	// does not start (nor create dest).
	sdir, sdirPath, err := jobstate.DirFor(opts.StateDir, "restore", true)
	if err != nil {
		return RestoreSummary{}, err
	}
	d, err := openDest(dest, true)
	if err != nil {
		sys.Close(sdir)
		return RestoreSummary{}, err
	}
	defer d.Close()
	rs := &restorer{d: d, top: d, opts: &opts, m: m, ar: ar, sel: sel}
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

	sched *scheduler // hands small files to the workers

	abortMu sync.Mutex
	abort   error // set when opts.Reporter.Error returned an error

	files, dirsN, links, others, skipped, bytes, caps, failures, warnings atomic.Int64
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
	rs.opts.Reporter.Warn(rs.d.display(name), err)
}

// fail reports a per-entry error.
func (rs *restorer) fail(name string, err error) {
	rs.failures.Add(1)
	if aerr := rs.opts.Reporter.Error(rs.d.display(name), err); aerr != nil {
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
	rs.sched = newScheduler(rs.opts.Workers, rs.worker)
	pc := &parentCache{d: rs.d}
	err := rs.loop(ctx, pc)
	rs.sched.stop()
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
	for e, err := range rs.ar.Entries(ctx) {
		if aerr := rs.aborted(); aerr != nil {
			return aerr
		}
		if _, bad := errors.AsType[*tarfmt.EntryError](err); bad {
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
	return nil
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
		rs.sched.waitFor(e.Name, -1) // an earlier member of that name is written first
		return rs.writeFile(pc, e, mt, rs.ar)
	case tar.TypeDir:
		rs.sched.waitFor(e.Name, -1) // a worker may hold a file of that name
		return rs.dir(pc, e, mt)
	case tar.TypeLink:
		if w, ok := rs.sched.holder(e.Link); ok {
			// Its target is not written yet: the worker that writes it
			// makes the link next.
			rs.sched.waitFor(e.Name, w) // a worker may hold a file of that name
			cost := metaCost(e, mt)
			rs.sched.acquire(cost)
			rs.sched.queue(w, &fileJob{e: e, meta: mt, link: true, held: cost}, 0)
			return nil
		}
		rs.sched.waitFor(e.Name, -1) // a worker may hold a file of that name
		return rs.special(pc, e, mt)
	case tar.TypeSymlink, tar.TypeFifo, tar.TypeChar, tar.TypeBlock:
		rs.sched.waitFor(e.Name, -1) // a worker may hold a file of that name
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
	rs.sched.acquire(cost)
	data := getBuf(size)
	if _, err := io.ReadFull(rs.ar, data); err != nil {
		putBuf(data)
		rs.sched.release(cost)
		return &archiveReadError{fmt.Errorf("%s: %w", e.Header.Name, noEOF(err))}
	}
	// Creating a file takes its directory's lock: files of one directory
	// go to one worker, different directories are filled in parallel.
	dir, _ := path.Split(e.Name)
	w := rs.sched.pick(dir)
	rs.sched.waitFor(e.Name, w) // two members of one name: keep their order
	rs.sched.queue(w, &fileJob{e: e, meta: mt, data: data, held: cost}, cost)
	return nil
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// done reports member e (translated metadata mt) in place or kept.
func (rs *restorer) done(e *tarfmt.Entry, mt *entryMeta, action archive.Action, size int64) {
	rs.opts.Reporter.CompleteItem(rs.d.display(e.Name), action, archive.ItemStats{Size: size, Caps: len(mt.caps) > 0})
}
