//go:build linux

package backup

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/internal/testutil"
)

// TestDamagedArchives: an archive cut anywhere (inside the padding after
// a header or a member's data too, which archive/tar takes for a clean
// end) and a gzip archive with a flipped byte or without its trailer are
// errors for restore and verify, as for GNU tar and bsdtar: never a
// restore that exits well with files missing or wrong.
func TestDamagedArchives(t *testing.T) {
	dir := testutil.TempDir(t)
	src := filepath.Join(dir, "src")
	testutil.NoErr(t, os.Mkdir(src, 0o755))
	for name, n := range map[string]int{"a": 100, "b": 700, "c": 2, "r": 200000} {
		b := make([]byte, n)
		_, _ = rand.Read(b)
		testutil.NoErr(t, os.WriteFile(filepath.Join(src, name), b, 0o644))
	}
	build := func(c Compression) []byte {
		var b bytes.Buffer
		_, err := Write(context.Background(), &b, src, Options{Compression: c})
		testutil.NoErr(t, err)
		return b.Bytes()
	}
	restore := func(arch []byte) error {
		dest := filepath.Join(testutil.TempDir(t), "d")
		_, err := Restore(context.Background(), bytes.NewReader(arch), dest, RestoreOptions{Reporter: funcs{err: func(string, error) error { return nil }}})
		if err == nil {
			_, err = Verify(context.Background(), bytes.NewReader(arch), src, VerifyOptions{})
		}
		return err
	}
	plain := build(CompressNone)
	testutil.NoErr(t, restore(plain))
	cuts := 0
	for cut := 512; cut < len(plain)-1024; cut += 64 {
		err := restore(plain[:cut])
		if err == nil {
			t.Errorf("archive cut at %d of %d bytes: restore and verify succeeded", cut, len(plain))
		} else if !errors.Is(err, tarfmt.ErrTruncated) {
			cuts++ // cut inside a header or data: archive/tar's own error
		}
	}
	t.Logf("%d cuts failed with archive/tar's error, the rest with ErrTruncated", cuts)

	gz := build(CompressGzip)
	testutil.NoErr(t, restore(gz))
	flipped := bytes.Clone(gz)
	flipped[len(gz)/2] ^= 0xAA
	if err := restore(flipped); err == nil {
		t.Error("gzip archive with a flipped byte: restore and verify succeeded")
	}
	if err := restore(gz[:len(gz)-8]); err == nil {
		t.Error("gzip archive without its trailer: restore and verify succeeded")
	}
	zst := build(CompressZstd)
	zst = zst[:len(zst)-4]
	if err := restore(zst); err == nil {
		t.Error("zstd archive cut short: restore and verify succeeded")
	}
}
