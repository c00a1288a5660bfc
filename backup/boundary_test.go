//go:build linux

package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nscap/nscap/internal/archiver"
	"github.com/nscap/nscap/internal/restorer"
	"github.com/nscap/nscap/internal/testutil"
)

// boundarySizes are the file sizes at every buffer, chunk and budget
// boundary of backup and restore (0, 1, N-1, N, N+1 of each), plus the
// issue's 3,000,000-byte reproduction and 8 MiB+1.
func boundarySizes() []int64 {
	limits := []int64{
		restorer.HoleBlock,   // restore's hole unit
		512,                  // smallest restore buffer class, a tar block
		64 << 10,             // the writer's zero padding
		archiver.StreamChunk, // backup's streaming chunk, restore's small-file limit, the archive bufio
		restorer.SmallFile,   // (the same today; kept apart so a change is still covered)
		archiver.SmallFile,   // the largest file a backup worker reads ahead; restore's batch bytes
		restorer.BatchBytes,  //
		restorer.Inflight,    // restore's memory budget
	}
	set := map[int64]bool{0: true, 1: true, 3000000: true, 8<<20 + 1: true}
	for _, n := range limits {
		for _, d := range []int64{-1, 0, 1} {
			set[n+d] = true
		}
	}
	sizes := make([]int64, 0, len(set))
	for n := range set {
		sizes = append(sizes, n)
	}
	slices.Sort(sizes)
	return sizes
}

// writeRandom makes a file of n random bytes.
func writeRandom(t *testing.T, name string, n int64) {
	t.Helper()
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.Reader, n); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// sameFiles checks, with the tree comparison every round-trip test uses
// (testutil.CheckTree: sha256 of every file, sizes, modes, links), that
// dst holds what src holds.
func sameFiles(t *testing.T, how, src, dst string) {
	t.Helper()
	testutil.CheckTree(t, how, testutil.TakeSnapshot(t, src), dst, testutil.CompareOptions{
		Fields: testutil.FieldMode | testutil.FieldSize | testutil.FieldContent | testutil.FieldSymlink | testutil.FieldHardlinks,
	})
}

// TestBoundarySizes puts a file of every boundary size through every path
// that gives data back, judged by the sha256 of the source: nscap backup
// extracted by GNU tar and by bsdtar, nscap backup restored by nscap, and
// a GNU tar archive restored by nscap. The backups run with the default
// read-ahead budget and with budgets at the boundaries of the file sizes,
// so that each size is both read ahead and streamed.
func TestBoundarySizes(t *testing.T) {
	testutil.RequireTool(t, "tar", "bsdtar")
	dir := testutil.TempDir(t)
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range boundarySizes() {
		writeRandom(t, filepath.Join(src, fmt.Sprintf("f%09d", n)), n)
	}
	// A hard link to the largest: streamed whatever the budget.
	if err := os.Link(filepath.Join(src, fmt.Sprintf("f%09d", 8<<20+1)), filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, budget := range []int64{0, 1, 4095, 4096, 4097, restorer.SmallFile, archiver.SmallFile - 1, archiver.SmallFile, archiver.SmallFile + 1} {
		t.Run(fmt.Sprintf("readahead=%d", budget), func(t *testing.T) {
			work := filepath.Join(dir, fmt.Sprintf("ra%d", budget))
			if err := os.Mkdir(work, 0o755); err != nil {
				t.Fatal(err)
			}
			archive := filepath.Join(work, "a.tar")
			if _, err := WriteFile(ctx, archive, src, Options{ReadAhead: budget, Workers: 2}); err != nil {
				t.Fatal(err)
			}
			for _, x := range [][]string{{"tar", "-xf"}, {"bsdtar", "-xf"}} {
				out := filepath.Join(work, x[0])
				if err := os.Mkdir(out, 0o755); err != nil {
					t.Fatal(err)
				}
				if b, err := exec.Command(x[0], x[1], archive, "-C", out).CombinedOutput(); err != nil {
					t.Fatalf("%s: %v\n%s", x[0], err, b)
				}
				sameFiles(t, "nscap backup, "+x[0]+" extract", src, out)
			}
			if budget != 0 {
				return
			}
			for _, workers := range []int{1, 3} {
				out := filepath.Join(work, fmt.Sprintf("restore%d", workers))
				restoreFile(t, archive, out, RestoreOptions{Workers: workers})
				sameFiles(t, "nscap backup, nscap restore", src, out)
			}
		})
	}
	t.Run("gnu-tar-archive", func(t *testing.T) {
		archive := filepath.Join(dir, "gnu.tar")
		if b, err := exec.Command("tar", "-cf", archive, "-C", src, ".").CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, b)
		}
		out := filepath.Join(dir, "from-gnu")
		restoreFile(t, archive, out, RestoreOptions{})
		sameFiles(t, "GNU tar archive, nscap restore", src, out)
	})
}

// restoreFile restores the archive file into dest (created).
func restoreFile(t *testing.T, archive, dest string, opts RestoreOptions) {
	t.Helper()
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := Restore(context.Background(), f, dest, opts); err != nil {
		t.Fatalf("restore %s: %v", archive, err)
	}
}

// allocated returns the bytes a file has on disk.
func allocated(t *testing.T, name string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

// TestSparse archives sparse files as pax sparse members: the archive
// holds the data only, GNU tar and bsdtar extract them byte-exact, and
// every extraction, nscap restore's included, has the holes back. A file
// of zeros in an archive that is not sparse gets holes under --sparse.
func TestSparse(t *testing.T) {
	testutil.RequireTool(t, "tar", "bsdtar")
	dir := testutil.TempDir(t)
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 4096)
	_, _ = rand.Read(data)
	files := map[string]struct {
		size int64
		at   []int64 // offsets of 4 KiB of data
	}{
		"d/big":     {100 << 20, []int64{5 << 20, 60 << 20}}, // 100 MiB, 8 KiB of data
		"head":      {10 << 20, []int64{0}},                  // data, then a hole to the end
		"tail":      {10<<20 + 7, []int64{10<<20 - 4089}},    // a hole, then data to an odd end
		"empty":     {3 << 20, nil},                          // a hole only
		"unaligned": {1 << 20, []int64{123457}},
	}
	for name, f := range files {
		p := filepath.Join(src, name)
		fd, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := fd.Truncate(f.size); err != nil {
			t.Fatal(err)
		}
		for _, off := range f.at {
			n := min(int64(len(data)), f.size-off)
			if _, err := fd.WriteAt(data[:n], off); err != nil {
				t.Fatal(err)
			}
		}
		if err := fd.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if allocated(t, filepath.Join(src, "d/big")) > 1<<20 {
		t.Skip("this filesystem does not keep holes (NSCAP_TEST_DIR on one that does)")
	}
	if err := os.Link(filepath.Join(src, "d/big"), filepath.Join(src, "biglink")); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "a.tar")
	sum, err := WriteFile(context.Background(), archive, src, Options{Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sparse != int64(len(files)) {
		t.Errorf("Summary.Sparse = %d, want %d", sum.Sparse, len(files))
	}
	if fi, _ := os.Stat(archive); fi.Size() > 256<<10 {
		t.Errorf("archive of %d sparse files with 28 KiB of data is %d bytes", len(files), fi.Size())
	}
	// GNU tar lists the real names and sizes.
	list, err := exec.Command("tar", "-tvf", archive).CombinedOutput()
	if err != nil {
		t.Fatalf("tar -t: %v\n%s", err, list)
	}
	if !strings.Contains(string(list), fmt.Sprint(100<<20)+" ") || strings.Contains(string(list), "GNUSparseFile") {
		t.Errorf("tar -tv does not show ./d/big with its size:\n%s", list)
	}
	check := func(how, out string) {
		t.Helper()
		sameFiles(t, how, src, out)
		for name, f := range files {
			if a := allocated(t, filepath.Join(out, name)); a > int64(len(f.at))*64<<10 {
				t.Errorf("%s: %s has %d bytes allocated for %d KiB of data", how, name, a, 4*len(f.at))
			}
		}
	}
	for _, x := range [][]string{{"tar", "-xSf"}, {"bsdtar", "-xf"}} {
		out := filepath.Join(dir, x[0])
		if err := os.Mkdir(out, 0o755); err != nil {
			t.Fatal(err)
		}
		if b, err := exec.Command(x[0], x[1], archive, "-C", out).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", x[0], err, b)
		}
		check("nscap backup, "+x[0]+" extract", out)
	}
	restoreFile(t, archive, filepath.Join(dir, "restored"), RestoreOptions{})
	check("nscap backup, nscap restore", filepath.Join(dir, "restored"))

	// GNU tar -S writes sparse members in each of its formats: old GNU,
	// and pax 0.0, 0.1 and 1.0. Restored with holes.
	for _, format := range [][]string{{"gnu"}, {"posix", "0.0"}, {"posix", "0.1"}, {"posix", "1.0"}} {
		name := strings.Join(format, "-")
		args := []string{"-cS", "--format=" + format[0], "-f", filepath.Join(dir, name+".tar"), "-C", src, "."}
		if len(format) > 1 {
			args = append(args, "--sparse-version="+format[1])
		}
		if b, err := exec.Command("tar", args...).CombinedOutput(); err != nil {
			t.Fatalf("tar %v: %v\n%s", args, err, b)
		}
		out := filepath.Join(dir, "from-"+name)
		restoreFile(t, filepath.Join(dir, name+".tar"), out, RestoreOptions{})
		check("GNU tar -S --format="+name+" archive, nscap restore", out)
	}

	// Without -S the zeros are data: holes only with Sparse.
	plain := filepath.Join(dir, "plain.tar")
	if b, err := exec.Command("tar", "-cf", plain, "-C", src, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar -c: %v\n%s", err, b)
	}
	restoreFile(t, plain, filepath.Join(dir, "from-plain"), RestoreOptions{Sparse: true})
	check("GNU tar archive, nscap restore --sparse", filepath.Join(dir, "from-plain"))
	restoreFile(t, plain, filepath.Join(dir, "from-plain-dense"), RestoreOptions{})
	sameFiles(t, "GNU tar archive, nscap restore", src, filepath.Join(dir, "from-plain-dense"))
	if a := allocated(t, filepath.Join(dir, "from-plain-dense", "empty")); a != 3<<20 {
		t.Errorf("without Sparse, a file of zeros of 3 MiB has %d bytes allocated, want them all", a)
	}
}

// TestRestoreMakesDest restores into a missing DEST: it is created with the
// owner, mode and times of the archive's root entry; a missing parent is
// an error that says so.
func TestRestoreMakesDest(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o750); err != nil {
		t.Fatal(err)
	}
	writeRandom(t, filepath.Join(src, "f"), 1000)
	if err := os.Chown(src, 1234, 5678); err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(src, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	archive := filepath.Join(dir, "a.tar")
	if _, err := WriteFile(context.Background(), archive, src, Options{}); err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(dir, "new")
	restoreFile(t, archive, dest, RestoreOptions{})
	fi, err := os.Stat(dest)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o750 || st.Uid != 1234 || st.Gid != 5678 || !fi.ModTime().Equal(mtime) {
		t.Errorf("made DEST: mode %v owner %d:%d mtime %v, want 0750 1234:5678 %v", fi.Mode().Perm(), st.Uid, st.Gid, fi.ModTime(), mtime)
	}
	sameFiles(t, "restore into a new DEST", src, dest)

	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = Restore(context.Background(), f, filepath.Join(dir, "no", "such"), RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), "parent directory does not exist") {
		t.Errorf("restore under a missing parent: %v, want an error about the parent", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "no")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("restore under a missing parent created it: %v", err)
	}
}

// changeAfter is a Reporter that rewrites a source file once the backup
// has archived it: the tree then differs from the archive.
type changeAfter struct {
	NopReporter
	name, path string
}

func (c changeAfter) CompleteItem(name string, _ Action, _ ItemStats) {
	if name == c.name {
		_ = os.WriteFile(c.path, []byte("changed after it was archived"), 0o644)
	}
}

// TestBackupVerify: --verify passes on a faithful backup and, when a file
// changes after it was archived, fails naming it and keeps no archive.
func TestBackupVerify(t *testing.T) {
	dir := testutil.TempDir(t)
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int64{0, 100, archiver.StreamChunk + 1, 3000000} {
		writeRandom(t, filepath.Join(src, "d", fmt.Sprint(n)), n)
	}
	if err := os.Symlink("d/100", filepath.Join(src, "sym")); err != nil {
		t.Fatal(err)
	}
	// The archive inside the tree is left out, and not a difference.
	archive := filepath.Join(src, "a.tar.zst")
	if _, err := WriteFile(context.Background(), archive, src, Options{Verify: true, Compression: CompressZstd}); err != nil {
		t.Fatalf("verify of a faithful backup: %v", err)
	}
	changed := filepath.Join(src, "d", "3000000")
	_, err := WriteFile(context.Background(), filepath.Join(dir, "b.tar"), src, Options{
		Verify: true, Workers: 1, Reporter: changeAfter{name: "./d/3000000", path: changed},
	})
	var vf *VerifyFailedError
	if !errors.As(err, &vf) {
		t.Fatalf("backup with a file changed after it was archived: %v, want a VerifyFailedError", err)
	}
	if len(vf.Diffs) == 0 || vf.Diffs[0].Path != changed || !strings.Contains(err.Error(), changed) {
		t.Errorf("differences %v, want %s", vf.Diffs, changed)
	}
	if _, err := os.Stat(filepath.Join(dir, "b.tar")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a backup that failed verification left its archive: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".b.tar*")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}

// TestRestoreLastMemberWins: of two members of one name, the later wins,
// whatever their sizes (a small one waits in a worker's batch while a
// large one is written at once), as with every tar reader; GNU tar's
// extraction of the same archive is the oracle.
func TestRestoreLastMemberWins(t *testing.T) {
	testutil.RequireTool(t, "tar")
	dir := testutil.TempDir(t)
	small := []byte("old!")
	large := make([]byte, restorer.SmallFile+1)
	_, _ = rand.Read(large)
	for _, order := range [][2][]byte{{small, large}, {large, small}} {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for i, data := range order {
			hdr := &tar.Header{Name: "target", Mode: []int64{0o4755, 0o755}[i], Size: int64(len(data)), Typeflag: tar.TypeReg, Uid: os.Getuid(), Gid: os.Getgid()}
			testutil.NoErr(t, tw.WriteHeader(hdr))
			_, err := tw.Write(data)
			testutil.NoErr(t, err)
		}
		testutil.NoErr(t, tw.Close())
		name := fmt.Sprintf("%d-%d", len(order[0]), len(order[1]))
		archive := filepath.Join(dir, name+".tar")
		testutil.NoErr(t, os.WriteFile(archive, b.Bytes(), 0o600))
		gnu := filepath.Join(dir, name+"-gnu")
		testutil.NoErr(t, os.Mkdir(gnu, 0o755))
		if out, err := exec.Command("tar", "-xpf", archive, "-C", gnu).CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, out)
		}
		for _, workers := range []int{1, 2, 4} {
			for _, into := range []string{"new", "full"} {
				dest := filepath.Join(dir, fmt.Sprintf("%s-%d-%s", name, workers, into))
				if into == "full" {
					testutil.NoErr(t, os.MkdirAll(filepath.Join(dest, "other"), 0o755))
				}
				restoreFile(t, archive, dest, RestoreOptions{Workers: workers})
				testutil.CheckTree(t, fmt.Sprintf("restore %s (%d workers, %s DEST)", name, workers, into), testutil.TakeSnapshot(t, gnu), dest, testutil.CompareOptions{
					Fields: testutil.FieldMode | testutil.FieldSize | testutil.FieldContent,
					Ignore: testutil.IgnorePaths("in DEST before the restore", "other"),
				})
			}
		}
	}
}

// changeAtStart is a Reporter that rewrites a byte of a source file when
// the writer starts on it, before it streams its data.
type changeAtStart struct {
	NopReporter
	name, path string
}

func (c changeAtStart) StartFile(name string) {
	if name == c.name {
		f, err := os.OpenFile(c.path, os.O_WRONLY, 0)
		if err == nil {
			_, _ = f.WriteAt([]byte{1}, 5)
			f.Close()
		}
	}
}

// TestBackupChangedWhileRead: a file that changes while it is archived is
// reported as GNU tar reports it ("file changed as we read it") and makes
// the backup incomplete, as a file that shrinks does: no archive is kept.
func TestBackupChangedWhileRead(t *testing.T) {
	dir := testutil.TempDir(t)
	src := filepath.Join(dir, "src")
	testutil.NoErr(t, os.Mkdir(src, 0o755))
	big := filepath.Join(src, "big")
	writeRandom(t, big, 3000000)
	_, err := WriteFile(context.Background(), filepath.Join(dir, "a.tar"), src, Options{Reporter: changeAtStart{name: "./big", path: big}})
	var ie *IncompleteError
	if !errors.As(err, &ie) || !errors.Is(err, ErrChanged) || ie.Paths()[0] != "./big" {
		t.Fatalf("backup of a file changed while read: %v, want an IncompleteError with ErrChanged for ./big", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.tar")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("archive kept: %v", err)
	}
}
