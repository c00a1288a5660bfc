package cli

import (
	"context"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nscap/nscap/internal/ui"
)

// startScan starts counting the tree alongside the backup for the total of
// a progress line that is drawn (interval > 0). stop ends the count and
// waits for it; it may be called more than once.
func startScan(ctx context.Context, opts *backupOptions, progress *ui.Progress, interval time.Duration) (stop func()) {
	if interval == 0 || len(opts.Exclude) > 0 {
		return func() {}
	}
	// The total for percent and ETA: a count of the tree alongside
	// the backup, as restic's scanner. With --exclude it would count
	// what is left out: no percent then.
	scanCtx, cancel := context.WithCancel(ctx)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		scanTree(scanCtx, opts.Root, opts.OneFileSystem, progress.SetTotal)
	}()
	return func() { cancel(); <-scanned }
}

// scanTree counts the entries under root and their content bytes (a file
// with several links once, a sparse file by its allocated blocks), as the
// backup will meet them, and reports the counts to total as it goes, with
// final set once the count is complete. It stops at the first error (an
// unreadable directory: the count would be short) without a final total,
// and when ctx is done.
func scanTree(ctx context.Context, root string, oneFS bool, total func(entries, bytes int64, final bool)) {
	var entries, size int64
	var rootDev uint64
	seen := make(map[[2]uint64]bool) // dev, ino of files with links
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		entries++
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			if p == root {
				rootDev = st.Dev
			}
			if d.IsDir() && oneFS && st.Dev != rootDev {
				return fs.SkipDir // the mount point is archived, not below it
			}
			if fi.Mode().IsRegular() {
				n := fi.Size()
				if st.Nlink > 1 {
					id := [2]uint64{st.Dev, st.Ino}
					if seen[id] {
						n = 0
					}
					seen[id] = true
				}
				if alloc := st.Blocks * 512; alloc < n {
					n = alloc
				}
				size += n
			}
		}
		if entries%1000 == 0 {
			total(entries, size, false)
		}
		return nil
	})
	if err == nil {
		total(entries, size, true)
	}
}
