package fcaps_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/sys"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/xattrfmt"
)

// makeTree fills dir, on rfs, with n regular files spread over nested
// directories, about 1 in 7 with a revision-2 value and 1 in 11 with a
// revision-3 one, plus symlinks (to capped files and to directories), fifos
// and one file with an empty (unreadable) value, planted raw. It returns
// the path of that file.
func makeTree(tb testing.TB, rfs *testutil.RawFS, dir string, n int) (unreadable string) {
	tb.Helper()
	for i := range n {
		d := filepath.Join(dir, fmt.Sprintf("d%02d", i%20), fmt.Sprintf("s%d", i%3))
		if i%2 == 0 {
			d = filepath.Join(d, "deep", "er")
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
		p := filepath.Join(d, fmt.Sprintf("f %d", i))
		writeFile(tb, p)
		var c xattrfmt.FileCaps
		switch {
		case i%11 == 0:
			c = xattrfmt.FileCaps{Revision: xattrfmt.Revision3, Effective: i%2 == 0, Permitted: xattrfmt.CapSet(i) << 1, Inheritable: 1 << (i % 41), RootID: 100000 + uint32(i)}
		case i%7 == 0:
			c = xattrfmt.FileCaps{Revision: xattrfmt.Revision2, Effective: true, Permitted: 1<<capNetRaw | xattrfmt.CapSet(i%64)<<30}
		default:
			continue
		}
		if err := fcaps.Set(p, c); err != nil {
			tb.Fatal(err)
		}
		if i%50 == 0 {
			if err := os.Symlink(p, p+".link"); err != nil {
				tb.Fatal(err)
			}
			if err := os.Symlink(d, filepath.Join(d, fmt.Sprintf("dirlink%d", i))); err != nil {
				tb.Fatal(err)
			}
		}
		if i%97 == 0 {
			if err := syscall.Mkfifo(p+".fifo", 0o644); err != nil {
				tb.Fatal(err)
			}
		}
	}
	unreadable = filepath.Join(dir, "d03", "empty")
	writeFile(tb, unreadable)
	testutil.NoErr(tb, rfs.Plant(fcaps.AttrName, map[string][]byte{unreadable: {}}))
	return unreadable
}

// scanLines runs Scan and returns the getcap -n lines of the files found
// (sorted) and the errors by path.
func scanLines(tb testing.TB, roots []string, opts fcaps.ScanOptions) (lines []string, errs map[string]error) {
	tb.Helper()
	errs = map[string]error{}
	err := fcaps.Scan(context.Background(), roots, opts, func(f fcaps.Found) error {
		if f.Err != nil {
			errs[f.Path] = f.Err
			return nil
		}
		lines = append(lines, getcapLine(f.Path, f.Caps))
		return nil
	})
	if err != nil {
		tb.Fatalf("Scan: %v", err)
	}
	slices.Sort(lines)
	return lines, errs
}

func getcapR(tb testing.TB, root string) []string {
	tb.Helper()
	out, err := exec.Command("getcap", "-r", "-n", root).Output()
	if err != nil {
		tb.Fatalf("getcap -r: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	slices.Sort(lines)
	return lines
}

func TestScanMatchesGetcap(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "getcap")
	rfs := testutil.NewRawFS(t)
	root := filepath.Join(rfs.Dir, "tree")
	unreadable := makeTree(t, rfs, root, 2000)
	want := getcapR(t, root)
	if len(want) < 400 {
		t.Fatalf("getcap -r found only %d files", len(want))
	}
	for _, useAt := range []bool{true, false} {
		for _, workers := range []int{1, 2, 8} {
			t.Run(fmt.Sprintf("getxattrat=%v/workers=%d", useAt, workers), func(t *testing.T) {
				defer fcaps.SetXattrat(useAt)()
				got, errs := scanLines(t, []string{root}, fcaps.ScanOptions{Workers: workers})
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("Scan vs getcap -r -n (-getcap +Scan):\n%s", diff)
				}
				if len(errs) != 1 || !errors.Is(errs[unreadable], fcaps.ErrUnreadable) {
					t.Errorf("Scan errors = %v, want only %s: ErrUnreadable", errs, unreadable)
				}
			})
		}
	}
	// A trailing slash and a relative root are joined as getcap joins them.
	t.Run("trailing-slash", func(t *testing.T) {
		got, _ := scanLines(t, []string{root + "/"}, fcaps.ScanOptions{})
		if diff := cmp.Diff(getcapR(t, root+"/"), got); diff != "" {
			t.Errorf("(-getcap +Scan):\n%s", diff)
		}
	})
}

func TestScanRoots(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	v2 := xattrfmt.FileCaps{Revision: xattrfmt.Revision2, Effective: true, Permitted: 1 << capNetRaw}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	capped := filepath.Join(sub, "capped")
	plain := filepath.Join(sub, "plain")
	writeFile(t, capped)
	writeFile(t, plain)
	if err := fcaps.Set(capped, v2); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(sub, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(sub, "link")
	if err := os.Symlink("capped", link); err != nil {
		t.Fatal(err)
	}
	dirlink := filepath.Join(dir, "dirlink")
	if err := os.Symlink("sub", dirlink); err != nil {
		t.Fatal(err)
	}
	// Stray values on non-regular files (accepted by the kernel).
	raw, _ := xattrfmt.Encode(v2)
	for _, p := range []string{sub, fifo, link} {
		if err := sys.Setxattr(p, fcaps.AttrName, raw, 0, false); err != nil {
			t.Fatalf("lsetxattr %s: %v", p, err)
		}
	}
	line := func(p string) string { return getcapLine(p, v2) }

	tests := []struct {
		name  string
		roots []string
		opts  fcaps.ScanOptions
		want  []string
		errs  []string // paths reported with Err (ErrNoCaps for All)
	}{
		{"dir", []string{sub}, fcaps.ScanOptions{}, []string{line(capped)}, nil},
		{"regular-file-root", []string{capped, plain}, fcaps.ScanOptions{}, []string{line(capped)}, nil},
		{"symlink-roots-not-followed", []string{dirlink, link}, fcaps.ScanOptions{}, nil, nil},
		{"all", []string{sub}, fcaps.ScanOptions{All: true}, []string{line(capped)}, []string{plain}},
		{"non-regular", []string{sub}, fcaps.ScanOptions{NonRegular: true}, []string{line(capped), line(fifo), line(link), line(sub)}, nil},
		{"non-regular-symlink-root", []string{link}, fcaps.ScanOptions{NonRegular: true}, []string{line(link)}, nil},
		{"missing-root", []string{filepath.Join(dir, "nope"), sub}, fcaps.ScanOptions{}, []string{line(capped)}, []string{filepath.Join(dir, "nope")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, errs := scanLines(t, tc.roots, tc.opts)
			slices.Sort(tc.want)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Scan(%v) (-want +got):\n%s", tc.roots, diff)
			}
			var gotErrs []string
			for p, err := range errs {
				gotErrs = append(gotErrs, p)
				if tc.opts.All && !errors.Is(err, fcaps.ErrNoCaps) {
					t.Errorf("All: %s: %v, want ErrNoCaps", p, err)
				}
			}
			if diff := cmp.Diff(tc.errs, gotErrs); diff != "" {
				t.Errorf("Scan(%v) error paths (-want +got):\n%s", tc.roots, diff)
			}
		})
	}
	t.Run("types", func(t *testing.T) {
		types := map[string]fs.FileMode{}
		err := fcaps.Scan(context.Background(), []string{sub}, fcaps.ScanOptions{NonRegular: true}, func(f fcaps.Found) error {
			types[f.Path] = f.Type
			return nil
		})
		want := map[string]fs.FileMode{capped: 0, fifo: fs.ModeNamedPipe, link: fs.ModeSymlink, sub: fs.ModeDir}
		if err != nil || !cmp.Equal(want, types) {
			t.Errorf("Found.Type = %v, %v; want %v", types, err, want)
		}
	})
}

func TestScanStop(t *testing.T) {
	testutil.RequireRoot(t)
	rfs := testutil.NewRawFS(t)
	dir := rfs.Dir
	makeTree(t, rfs, dir, 300)
	errStop := errors.New("stop")
	var mu sync.Mutex
	calls := 0
	err := fcaps.Scan(context.Background(), []string{dir}, fcaps.ScanOptions{Workers: 4}, func(fcaps.Found) error {
		mu.Lock() // Scan promises one call at a time; the race detector checks it
		defer mu.Unlock()
		calls++
		return errStop
	})
	if !errors.Is(err, errStop) || calls != 1 {
		t.Errorf("Scan = %v after %d calls, want errStop after 1", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err = fcaps.Scan(ctx, []string{dir}, fcaps.ScanOptions{}, func(fcaps.Found) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Scan with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestScanXDev(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	v2 := xattrfmt.FileCaps{Revision: xattrfmt.Revision2, Effective: true, Permitted: 1 << capNetRaw}
	top := filepath.Join(dir, "top")
	mnt := filepath.Join(dir, "mnt")
	for _, d := range []string{mnt} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, top)
	if err := fcaps.Set(top, v2); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) }) // gone with the namespace, at worst
	inner := filepath.Join(mnt, "inner")
	writeFile(t, inner)
	if err := fcaps.Set(inner, v2); err != nil {
		t.Fatalf("set caps on tmpfs: %v", err)
	}
	got, _ := scanLines(t, []string{dir}, fcaps.ScanOptions{Workers: 2})
	if want := []string{getcapLine(inner, v2), getcapLine(top, v2)}; !cmp.Equal(want, got) {
		t.Errorf("Scan without XDev = %q, want %q", got, want)
	}
	got, _ = scanLines(t, []string{dir}, fcaps.ScanOptions{Workers: 2, XDev: true})
	if want := []string{getcapLine(top, v2)}; !cmp.Equal(want, got) {
		t.Errorf("Scan with XDev = %q, want %q", got, want)
	}
	// A root on the other filesystem is walked: XDev is relative to each root.
	got, _ = scanLines(t, []string{mnt}, fcaps.ScanOptions{XDev: true})
	if want := []string{getcapLine(inner, v2)}; !cmp.Equal(want, got) {
		t.Errorf("Scan of the mount with XDev = %q, want %q", got, want)
	}
}

// TestScanDeep walks a chain deeper than the directories a worker keeps
// open (64): the levels below are queued by path and reopened from the
// root. Files on every level, some capped, must match getcap -r; the fd
// count is checked by TestMain.
func TestScanDeep(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "getcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	root := filepath.Join(dir, "deep")
	d := root
	for i := range 150 {
		d = filepath.Join(d, fmt.Sprintf("l%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		// a sibling branch on some levels, so that idle workers get work
		if i%20 == 0 {
			side := filepath.Join(filepath.Dir(d), "side")
			if err := os.MkdirAll(filepath.Join(side, "x", "y"), 0o755); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(side, "x", "y", "f")
			writeFile(t, p)
			if err := fcaps.Set(p, xattrfmt.FileCaps{Revision: xattrfmt.Revision2, Effective: true, Permitted: 1 << capNetRaw}); err != nil {
				t.Fatal(err)
			}
		}
		p := filepath.Join(d, "f")
		writeFile(t, p)
		if i%7 == 0 {
			c := xattrfmt.FileCaps{Revision: xattrfmt.Revision3, Permitted: 1 << capNetRaw, RootID: 100000 + uint32(i)}
			if err := fcaps.Set(p, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := getcapR(t, root)
	if len(want) < 25 {
		t.Fatalf("getcap -r found only %d files", len(want))
	}
	for _, workers := range []int{1, 2, 8} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			got, errs := scanLines(t, []string{root}, fcaps.ScanOptions{Workers: workers})
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Scan vs getcap -r -n (-getcap +Scan):\n%s", diff)
			}
			if len(errs) != 0 {
				t.Errorf("Scan errors: %v", errs)
			}
		})
	}
}

// TestScanCancelMidway cancels the context from the callback while the
// workers hold open directories and queued ones: Scan returns the
// context's error soon after, and no fd
// stays open (checked by TestMain).
func TestScanCancelMidway(t *testing.T) {
	testutil.RequireRoot(t)
	rfs := testutil.NewRawFS(t)
	dir := rfs.Dir
	makeTree(t, rfs, dir, 1500)
	for _, workers := range []int{2, 4} {
		t.Run(fmt.Sprintf("workers=%d", workers), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			calls := 0
			err := fcaps.Scan(ctx, []string{dir}, fcaps.ScanOptions{Workers: workers}, func(fcaps.Found) error {
				calls++ // one call at a time: the race detector checks it
				if calls == 20 {
					cancel()
				}
				return nil
			})
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Scan = %v after %d calls, want context.Canceled", err, calls)
			}
			if calls > 100 {
				t.Errorf("Scan went on for %d calls after the cancel", calls)
			}
		})
	}
}

// benchTree is built once for the benchmarks: 20k files, 1 in 10 capped.
var benchTree = sync.OnceValues(func() (string, error) {
	base := os.Getenv("NSCAP_BENCH_DIR")
	if base == "" {
		base = os.TempDir()
	}
	dir, err := os.MkdirTemp(base, "nscap-bench-")
	if err != nil {
		return "", err
	}
	benchDir = dir
	raw, _ := xattrfmt.Encode(xattrfmt.FileCaps{Revision: xattrfmt.Revision2, Effective: true, Permitted: 1 << capNetRaw})
	for i := range 20000 {
		d := filepath.Join(dir, fmt.Sprintf("d%03d", i%100), fmt.Sprintf("s%d", i%4))
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
		p := filepath.Join(d, fmt.Sprintf("f%d", i))
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			return "", err
		}
		if i%10 == 0 {
			if err := syscall.Setxattr(p, fcaps.AttrName, raw, 0); err != nil {
				return "", err
			}
		}
	}
	return dir, nil
})

// benchDir is removed by TestMain.
var benchDir string

// BenchmarkScan walks a 20k-file tree (made under NSCAP_BENCH_DIR, default
// TMPDIR); compare with BenchmarkGetcap.
func BenchmarkScan(b *testing.B) {
	testutil.RequireRoot(b)
	dir, err := benchTree()
	if err != nil {
		b.Fatal(err)
	}
	for _, useAt := range []bool{true, false} {
		for _, workers := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("getxattrat=%v/workers=%d", useAt, workers), func(b *testing.B) {
				defer fcaps.SetXattrat(useAt)()
				for b.Loop() {
					n := 0
					err := fcaps.Scan(context.Background(), []string{dir}, fcaps.ScanOptions{Workers: workers}, func(fcaps.Found) error {
						n++
						return nil
					})
					if err != nil || n != 2000 {
						b.Fatalf("Scan = %v, %d found", err, n)
					}
				}
			})
		}
	}
}

// BenchmarkGetcap is the reference: getcap -r on the same tree.
func BenchmarkGetcap(b *testing.B) {
	testutil.RequireRoot(b)
	testutil.RequireTool(b, "getcap")
	dir, err := benchTree()
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := exec.Command("getcap", "-r", dir).Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkScanTree walks an existing tree named by NSCAP_BENCH_TREE (for
// instance the one make bench builds with mktree.py) the way nscap get -r
// does, with GOMAXPROCS workers; it is skipped without the variable.
func BenchmarkScanTree(b *testing.B) {
	dir := os.Getenv("NSCAP_BENCH_TREE")
	if dir == "" {
		b.Skip("NSCAP_BENCH_TREE not set")
	}
	for b.Loop() {
		n := 0
		err := fcaps.Scan(context.Background(), []string{dir}, fcaps.ScanOptions{}, func(fcaps.Found) error {
			n++
			return nil
		})
		if err != nil || n == 0 {
			b.Fatalf("Scan = %v, %d found", err, n)
		}
	}
}
