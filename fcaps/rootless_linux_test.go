package fcaps_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/xattrfmt"
)

// TestSetOwnFileByCaller checks, as whoever runs the tests, what writing
// capabilities on a file the caller owns does: root writes directly; an
// unprivileged caller (make unit-unpriv) is refused the direct write with
// EPERM, and a [fcaps.Setter] serves it through a helper user namespace
// for a rootid the helper maps (its own uid), while it refuses, writing
// nothing, a host-wide value or a file owned by another user.
func TestSetOwnFileByCaller(t *testing.T) {
	root := testutil.IsRoot()
	if !root {
		testutil.RequireUserNS(t)
	}
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir) // the helper's root is not host root
	f := filepath.Join(dir, "f")
	writeFile(t, f)
	euid := uint32(os.Geteuid())
	v2 := xattrfmt.FileCaps{Revision: xattrfmt.Revision2, Effective: true, Permitted: 1 << capNetRaw}
	own := xattrfmt.FileCaps{Revision: xattrfmt.Revision3, Effective: true, Permitted: 1 << capNetRaw, RootID: 4242}
	if !root {
		own.RootID = euid
	}

	// Direct writes: root may, a plain user may not (and nothing is written).
	err := fcaps.Set(f, v2)
	if root {
		if err != nil {
			t.Fatalf("Set(v2) as root: %v", err)
		}
		if err := fcaps.Remove(f); err != nil {
			t.Fatalf("Remove as root: %v", err)
		}
	} else {
		checkErr(t, fmt.Sprint("Set(v2) as uid ", euid), err, fs.ErrPermission, syscall.EPERM)
		if err != nil && !strings.Contains(err.Error(), "CAP_SETFCAP") {
			t.Errorf("Set(v2) error %q does not name CAP_SETFCAP", err)
		}
	}
	if _, err := fcaps.Get(f); !errors.Is(err, fcaps.ErrNoCaps) {
		t.Fatalf("Get after the direct write attempt: %v, want ErrNoCaps", err)
	}

	// The Setter: directly for root, through the helper otherwise.
	s := fcaps.NewSetter(fcaps.SetterOptions{Helper: fcaps.HelperAuto})
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	if err := s.Set(f, own); err != nil {
		t.Fatalf("Setter.Set(rootid %d) as uid %d: %v", own.RootID, euid, err)
	}
	got, err := fcaps.Get(f)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(own, got); diff != "" {
		t.Errorf("Get after Setter.Set as uid %d (-want +got):\n%s", euid, diff)
	}

	// A host-wide value and another user's file are outside the helper's
	// maps: refused before anything is written.
	err = s.Set(f, v2)
	if root {
		if err != nil {
			t.Errorf("Setter.Set(v2) as root: %v", err)
		}
		if err := s.Set(f, own); err != nil {
			t.Fatal(err)
		}
	} else {
		checkErr(t, "Setter.Set(v2)", err, fcaps.ErrOutsideHelperMap)
		if err != nil && !strings.Contains(err.Error(), "nothing written") {
			t.Errorf("Setter.Set(v2) error %q does not say nothing was written", err)
		}
		if got, _ := fcaps.Get(f); !cmp.Equal(got, own) {
			t.Errorf("caps after the refused Setter.Set(v2) = %v, want %v unchanged", got, own)
		}
		if st, err := os.Stat("/etc/passwd"); err == nil && st.Sys().(*syscall.Stat_t).Uid == 0 {
			err := s.Set("/etc/passwd", own)
			checkErr(t, "Setter.Set(/etc/passwd)", err, fcaps.ErrOutsideHelperMap)
			if err != nil && !strings.Contains(err.Error(), "owner uid 0") {
				t.Errorf("Setter.Set(/etc/passwd) error %q does not name the owner", err)
			}
		}
	}

	// Removal: direct refused unprivileged, through the Setter served.
	if !root {
		checkErr(t, fmt.Sprint("Remove as uid ", euid), fcaps.Remove(f), fs.ErrPermission, syscall.EPERM)
	}
	if err := s.Remove(f); err != nil {
		t.Fatalf("Setter.Remove as uid %d: %v", euid, err)
	}
	if _, err := fcaps.Get(f); !errors.Is(err, fcaps.ErrNoCaps) {
		t.Errorf("Get after Setter.Remove: %v, want ErrNoCaps", err)
	}
}
