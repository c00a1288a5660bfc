package backup

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nscap/nscap/userns"
)

// TestUnmappedOwner: an EPERM or EACCES of the helper on an inode whose
// owner or group is outside the helper's maps names the id (issue 14).
// The file is the test's own: its owner is the caller's uid, which a map
// may or may not cover, as root and unprivileged alike.
func TestUnmappedOwner(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	uid, gid := uint32(os.Getuid()), uint32(os.Getgid())
	mustMap := func(s string) userns.Map {
		t.Helper()
		m, err := userns.ParseMap(s)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	other := func(id uint32) userns.Map { // a map without id
		if id < 500000 {
			return mustMap("0:500000:10")
		}
		return mustMap("0:1:10")
	}
	own := func(id uint32) userns.Map { return mustMap("0:" + strconv.FormatUint(uint64(id), 10) + ":1") }

	var got []string
	handle := func(ev helperEvent) error { got = append(got, ev.Msg); return nil }
	h := withUnmappedOwner(handle, other(uid), own(gid))
	_ = h(helperEvent{Type: "error", Path: p, Op: "fchown", Msg: "operation not permitted", Errno: int(syscall.EPERM)})
	_ = h(helperEvent{Type: "error", Path: p, Op: "open", Msg: "no such file", Errno: int(syscall.ENOENT)})
	_ = h(helperEvent{Type: "item", Path: p})
	want0 := "operation not permitted (owner uid " + strconv.FormatUint(uint64(uid), 10) + " is outside the helper user namespace, which maps uids "
	if len(got) != 3 || !strings.HasPrefix(got[0], want0) || strings.Contains(got[0], "gid") || got[1] != "no such file" || got[2] != "" {
		t.Errorf("messages = %q, want the EPERM to start %q and name no gid, the others unchanged", got, want0)
	}

	// Both ids unmapped: both named; both mapped: nothing added.
	if s := unmappedOwner(p, other(uid), other(gid)); !strings.Contains(s, "owner uid") || !strings.Contains(s, " and group gid ") || !strings.Contains(s, " and gids ") {
		t.Errorf("unmappedOwner(both unmapped) = %q", s)
	}
	if s := unmappedOwner(p, own(uid), other(gid)); !strings.HasPrefix(s, " (group gid "+strconv.FormatUint(uint64(gid), 10)+" is outside") {
		t.Errorf("unmappedOwner(gid unmapped) = %q", s)
	}
	if s := unmappedOwner(p, own(uid), own(gid)); s != "" {
		t.Errorf("unmappedOwner(both mapped) = %q, want empty", s)
	}
	// A path that cannot be examined: nothing added.
	if s := unmappedOwner(filepath.Join(p, "nope"), other(uid), other(gid)); s != "" {
		t.Errorf("unmappedOwner(missing) = %q, want empty", s)
	}
}
