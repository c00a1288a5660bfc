//go:build linux

package shifter

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/sys"
)

// journalBatch bounds the inodes of a directory waiting for their
// journal records to be synced (each holds a descriptor).
const journalBatch = 128

// journaled is an inode whose changes wait for its journal record.
type journaled struct {
	h     handle
	rel   string
	st    sys.Stat
	p     inodePlan
	chown bool
}

// flush records the batch in the journal with one fdatasync, then
// changes each inode and closes its descriptor.
func (s *shifter) flush(batch []*journaled) {
	if len(batch) == 0 {
		return
	}
	var b strings.Builder
	for _, j := range batch {
		b.WriteString(fixRecord(j.st.Ino, j.p.uid, j.p.gid, j.st.Mode&0o7777, j.p.newCaps, j.rel))
	}
	err := s.journal.write(b.String(), true)
	if err != nil {
		s.incomplete.Store(true) // a record may have made it
	}
	for _, j := range batch {
		if err != nil {
			s.fail(j.rel, err) // not journaled: left as it is
		} else if aerr := s.apply(j.h, j.rel, &j.st, &j.p, j.chown); aerr != nil {
			s.incomplete.Store(true)
			s.fail(j.rel, aerr)
		} else {
			s.changedOne(j.rel, &j.p)
		}
		s.close(j.h.fd)
	}
}

// openDeep opens rel below rootfd one component at a time, for a path
// longer than PATH_MAX: every directory with O_DIRECTORY|O_NOFOLLOW
// relative to the one before (no symlink followed, none escapes), the
// last one too unless last is set (then O_PATH|O_NOFOLLOW).
func openDeep(rootfd int, rel string, last bool) (int, error) {
	parts := strings.Split(rel, "/")
	fd := rootfd
	for i, c := range parts {
		var nfd int
		var err error
		if last && i == len(parts)-1 {
			nfd, err = sys.Openat(fd, c, sys.OPathNoFollow, 0)
		} else {
			nfd, err = sys.OpenDirAtZ(fd, append([]byte(c), 0), false)
		}
		if fd != rootfd {
			sys.Close(fd)
		}
		if err != nil {
			return -1, err
		}
		fd = nfd
	}
	return fd, nil
}

// replay completes the inodes the journal of an interrupted run names:
// those it chowned but may not have given their caps and mode back.
func (s *shifter) replay() error {
	for _, f := range s.journal.fixes {
		fd, err := sys.Openat2(s.rootfd, f.path, sys.OPathNoFollow, sys.ResolveBeneath|sys.ResolveNoSymlinks)
		if errors.Is(err, sys.ENAMETOOLONG) {
			fd, err = openDeep(s.rootfd, f.path, true)
		}
		if err != nil {
			if !errors.Is(err, sys.ENOENT) {
				s.fail(f.path, &fs.PathError{Op: "open", Path: f.path, Err: err})
			}
			continue
		}
		st, err := sys.Fstat(fd)
		// Only the very inode, chowned already: otherwise the walk does
		// it from the start.
		if err == nil && st.Ino == f.ino && st.Mode&sys.S_IFMT != sys.S_IFDIR && st.Uid == f.uid && st.Gid == f.gid {
			if fixed, err := s.replayOne(fd, f, &st); err != nil {
				s.incomplete.Store(true)
				s.fail(f.path, err)
			} else if fixed {
				s.replayed.Add(1)
			}
		}
		sys.Close(fd)
	}
	return s.abortErr()
}

func (s *shifter) replayOne(fd int, f shiftFix, st *sys.Stat) (fixed bool, err error) {
	proc := sys.ProcFdPath(fd)
	if st.Mode&0o7777 != f.mode {
		if err := sys.Chmod(proc, f.mode); err != nil {
			return false, &fs.PathError{Op: "chmod", Path: f.path, Err: err}
		}
		fixed = true
	}
	if f.caps != nil {
		cur, err := sys.GetxattrAll(proc, archive.XattrCaps, true)
		if err != nil && !errors.Is(err, sys.ENODATA) {
			return fixed, &fs.PathError{Op: "getxattr " + archive.XattrCaps, Path: f.path, Err: err}
		}
		if !bytes.Equal(cur, f.caps) {
			if err := sys.Setxattr(proc, archive.XattrCaps, f.caps, 0, true); err != nil {
				return fixed, &fs.PathError{Op: "setxattr " + archive.XattrCaps, Path: f.path, Err: err}
			}
			fixed = true
		}
	}
	return fixed, nil
}
