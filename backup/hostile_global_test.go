//go:build linux

package backup

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/internal/testutil"
)

// TestLateGlobalHeader: a pax global header with a comment after the
// first member (issue 12, item 3) would change how the members after it
// are read (nscap's comment carries the source maps). Restore, verify and
// the audit all refuse the archive, through the one rule of tarfmt.
func TestLateGlobalHeader(t *testing.T) {
	late := Meta{Tool: "nscap", UIDMap: mustMap(t, "0:100000:65536"), GIDMap: mustMap(t, "0:100000:65536")}.Comment()
	var buf bytes.Buffer
	buf.Write(makeArchive(t, "", []member{{name: "a", data: "1"}}))
	// Cut the end-of-archive blocks, then a late global header and a member
	// with a host-scoped cap_sys_admin.
	arch := buf.Bytes()[:buf.Len()-2*512]
	arch = append(arch, makeArchive(t, late, []member{{name: "b", data: "2", xattrs: map[string]string{XattrCaps: string(testutil.RawCaps(2, 0))}}})...)

	dest := testutil.TempDir(t)
	_, err := Restore(context.Background(), bytes.NewReader(arch), filepath.Join(dest, "r"), RestoreOptions{})
	if !errors.Is(err, tarfmt.ErrLateGlobal) {
		t.Errorf("restore: %v, want ErrLateGlobal", err)
	}
	_, err = Verify(context.Background(), bytes.NewReader(arch), dest, VerifyOptions{})
	if !errors.Is(err, tarfmt.ErrLateGlobal) {
		t.Errorf("verify: %v, want ErrLateGlobal", err)
	}
	err = fcaps.AuditArchive(context.Background(), bytes.NewReader(arch), "late.tar", fcaps.AuditOptions{}, func(fcaps.Finding) error { return nil })
	if !errors.Is(err, tarfmt.ErrLateGlobal) || !errors.Is(err, fcaps.ErrBadArchive) {
		t.Errorf("audit: %v, want ErrBadArchive and ErrLateGlobal", err)
	}
}
