//go:build linux

package restorer

import (
	"errors"
	"fmt"
	"os"

	"github.com/nscap/nscap/internal/sys"

	"github.com/nscap/nscap/internal/archive"
)

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
	if err := sys.Mkdirat(rs.d.fd, name, 0o700); err != nil {
		return rs.d.pathErr("mkdir", name, err)
	}
	undo := func() {
		if err := sys.Unlinkat(rs.d.fd, name, sys.AT_REMOVEDIR); err != nil && !errors.Is(err, sys.ENOENT) {
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
	if err := sys.Removexattr(sys.ProcFdPath(sd.fd), archive.XattrACLDefault, true); err != nil && !errors.Is(err, sys.ENODATA) && !errors.Is(err, sys.EOPNOTSUPP) {
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
	fd, err := sys.Openat(st.fd, ".", sys.O_RDONLY|sys.O_DIRECTORY|sys.O_CLOEXEC, 0)
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
		err := sys.Renameat2(st.fd, name, rs.top.fd, name, sys.RENAME_NOREPLACE)
		if errors.Is(err, sys.EINVAL) {
			// No RENAME_NOREPLACE on this filesystem.
			if _, serr := sys.FstatatNoFollow(rs.top.fd, name); errors.Is(serr, sys.ENOENT) {
				err = sys.Renameat(st.fd, name, rs.top.fd, name)
			}
		}
		if err != nil {
			rs.fail(name, rs.top.pathErr("rename", name, err))
		}
	}
	// Empty unless a rename failed. The name is removed only while it is
	// the staging directory: the container may have renamed that one
	// away and put its own in its place.
	a, err := sys.Fstat(st.fd)
	if err != nil {
		rs.keepState = true
		return rs.top.pathErr("fstat", rs.staging, err)
	}
	b, err := sys.FstatatNoFollow(rs.top.fd, rs.staging)
	switch {
	case errors.Is(err, sys.ENOENT): // removed already (empty, by the container)
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

// TestHookCommit is called, when set (by tests only), before each
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
