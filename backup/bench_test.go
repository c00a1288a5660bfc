package backup

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/nscap/nscap/internal/testutil"
)

// benchTree makes dirs×files small files (1 KiB to 16 KiB), every 10th
// with a user xattr, for the write benchmarks.
func benchTree(b *testing.B, dirs, files int) string {
	b.Helper()
	root := filepath.Join(testutil.TempDir(b), "tree")
	data := make([]byte, 16<<10)
	for d := range dirs {
		dir := filepath.Join(root, fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range files {
			p := filepath.Join(dir, fmt.Sprintf("f%04d", f))
			if err := os.WriteFile(p, data[:1024*(1+(d*files+f)%16)], 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	return root
}

// BenchmarkWrite archives a 4000-file tree to io.Discard with one worker
// (no read-ahead parallelism) and with the default.
func BenchmarkWrite(b *testing.B) {
	root := benchTree(b, 40, 100)
	for _, workers := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			var bytes int64
			for b.Loop() {
				s, err := Write(context.Background(), io.Discard, root, Options{Workers: workers})
				if err != nil {
					b.Fatal(err)
				}
				bytes = s.Bytes
			}
			b.SetBytes(bytes)
		})
	}
}
