//go:build linux

package backup

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/internal/testutil"
)

// heavyHeaders streams an archive of n one-byte members, each with a pax
// header of about 1 MiB of xattr records, without holding it in memory.
func heavyHeaders(n, records int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		for i := range n {
			recs := make(map[string]string, records)
			for j := range records {
				recs[fmt.Sprintf("SCHILY.xattr.user.x%06d", j)] = strings.Repeat("v", 24)
			}
			err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("d%d/f%d", i%4, i), Size: 1, Mode: 0o644, Format: tar.FormatPAX, PAXRecords: recs})
			if err == nil {
				_, err = tw.Write([]byte("x"))
			}
			if err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	return pr
}

// TestRestoreMemoryHeaders is issue 12, item 5: members with huge pax
// headers and no data must count against the restore's in-flight budget.
// 150 members of ~1 MiB of headers each, restored with 4 workers: the heap
// stays within a few budgets (it grew with the member count before).
func TestRestoreMemoryHeaders(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 150 MiB of headers")
	}
	dest := filepath.Join(testutil.TempDir(t), "r")
	var peak atomic.Uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	_, err := Restore(t.Context(), heavyHeaders(150, 18000), dest, RestoreOptions{Workers: 4, Reporter: funcs{err: func(string, error) error { return nil }}})
	close(stop)
	<-done
	var ie *IncompleteError
	if err != nil && !errors.As(err, &ie) {
		t.Logf("restore: %v", err) // setxattr of 18,000 xattrs fails per file: not the point
	}
	grown := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("heap grew by %d MiB at most", grown>>20)
	if limit := int64(96 << 20); grown > limit {
		t.Errorf("restore of members with 1 MiB headers: heap grew by %d MiB, want under %d MiB", grown>>20, limit>>20)
	}

	// One header over archive/tar's 1 MiB (which archive/tar will not
	// write: made by hand): a clear error.
	var recs bytes.Buffer
	for j := range 40000 {
		rec := fmt.Sprintf(" SCHILY.xattr.user.x%06d=%s\n", j, strings.Repeat("v", 24))
		fmt.Fprintf(&recs, "%d%s", len(rec)+2, rec) // two digits... of 52
	}
	var arch bytes.Buffer
	tw := tar.NewWriter(&arch)
	testutil.NoErr(t, tw.WriteHeader(&tar.Header{Name: "PaxHeaders/f", Size: int64(recs.Len()), Mode: 0o644, Format: tar.FormatUSTAR}))
	blk := arch.Bytes()[:tarfmt.BlockSize]
	blk[156] = tar.TypeXHeader
	tarfmt.SetChecksum(blk)
	arch.Truncate(tarfmt.BlockSize)
	arch.Write(recs.Bytes())
	arch.Write(make([]byte, -recs.Len()&(tarfmt.BlockSize-1)))
	arch.Write(makeArchive(t, "", []member{{name: "f", data: "x"}}))
	_, err = Restore(t.Context(), &arch, filepath.Join(testutil.TempDir(t), "r2"), RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "over 1 MiB") {
		t.Errorf("restore of a 1.3 MiB pax header: %v, want an error about its size", err)
	}
}
