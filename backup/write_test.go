package backup

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/internal/archiver"
	"github.com/nscap/nscap/internal/testutil"
)

// recorder is a Reporter recording events.
type recorder struct {
	NopReporter
	warns []string
	errs  []string
	done  []string
}

func (r *recorder) Warn(p string, err error) { r.warns = append(r.warns, p+": "+err.Error()) }
func (r *recorder) Error(p string, err error) error {
	r.errs = append(r.errs, p+": "+err.Error())
	return nil
}

func (r *recorder) CompleteItem(p string, a Action, _ ItemStats) {
	r.done = append(r.done, p+" "+string(a))
}

func TestWriteMapped(t *testing.T) {
	root := fixture(t, 100000)
	m := mustMap(t, "0:100000:65536")
	for _, workers := range []int{1, 4} {
		t.Run("workers="+string(rune('0'+workers)), func(t *testing.T) {
			var buf bytes.Buffer
			rec := &recorder{}
			sum, err := Write(context.Background(), &buf, root, Options{UIDMap: m, Workers: workers, Tool: "nscap/test", Reporter: rec, ReadAhead: 64 << 10})
			if err != nil {
				t.Fatalf("Write: %v", err)
			}
			got, global := readEntries(t, &buf)
			if want := "nscap-backup/1 tool=nscap/test uidmap=0:100000:65536 gidmap=0:100000:65536 foreign-caps=fail"; global != want {
				t.Errorf("global comment = %q, want %q", global, want)
			}
			check := func(name string, f func(e entry) (got, want any)) {
				t.Helper()
				e, ok := got[name]
				if !ok {
					t.Errorf("no member %q", name)
					return
				}
				g, w := f(e)
				if diff := cmp.Diff(w, g); diff != "" {
					t.Errorf("%s (-want +got):\n%s", name, diff)
				}
			}
			check("./bin/ping", func(e entry) (any, any) {
				return []any{e.UID, e.GID, e.Type, e.Xattrs[XattrCaps], len(e.Content)}, []any{0, 0, byte('0'), string(testutil.RawCaps(2, 0)), 4000}
			})
			check("./bin/ping6", func(e entry) (any, any) {
				return []any{e.Type, e.Linkname, e.Size}, []any{byte('1'), "./bin/ping", int64(0)}
			})
			check("./bin/nested", func(e entry) (any, any) {
				return []any{e.UID, e.GID, e.Xattrs[XattrCaps]}, []any{1000, 1001, string(testutil.RawCaps(3, 1000))}
			})
			check("./bin/suid", func(e entry) (any, any) { return e.Mode, int64(0o4755) })
			check("./etc/acl", func(e entry) (any, any) { return e.Xattrs[XattrACLAccess], string(rawACL(1000, 1001)) })
			check("./home/user/", func(e entry) (any, any) {
				return []any{e.UID, e.Xattrs[XattrACLDefault], e.Xattrs["user.dir"]}, []any{1000, string(rawACL(1000, 1001)), "d"}
			})
			check("./etc/xattr", func(e entry) (any, any) { return e.Xattrs["user.comment"], "hello\x00binary\xff" })
			check("./lib", func(e entry) (any, any) { return []any{e.Type, e.Linkname}, []any{byte('2'), "usr/lib"} })
			check("./dev/null", func(e entry) (any, any) {
				return []any{e.Type, e.Devmajor, e.Devminor, e.Mode}, []any{byte('3'), int64(1), int64(3), int64(0o666)}
			})
			check("./dev/loop0", func(e entry) (any, any) {
				return []any{e.Type, e.Devmajor, e.Devminor}, []any{byte('4'), int64(7), int64(0)}
			})
			check("./run/fifo", func(e entry) (any, any) { return e.Type, byte('6') })
			check("./usr/lib/big", func(e entry) (any, any) {
				ok := len(e.Content) == 3<<20+123 && e.Content[1000] == byte(1000*7%256)
				return ok, true
			})
			check("./", func(e entry) (any, any) { return e.Type, byte('5') })
			check("./etc/empty", func(e entry) (any, any) { return e.ModTime.Nanosecond(), 123456789 })
			if _, ok := got["./run/sock"]; ok {
				t.Errorf("socket archived")
			}
			if len(rec.warns) != 1 || rec.warns[0] != "./run/sock: "+archiver.ErrSocket.Error() {
				t.Errorf("warnings = %q, want the socket only", rec.warns)
			}
			if sum.Caps != 2 || sum.Hardlinks != 1 || sum.Skipped != 1 || sum.Files != 7 || sum.Symlinks != 2 || sum.Specials != 3 || sum.Dirs != 10 {
				t.Errorf("summary = %+v", sum)
			}
			if sum.Duration <= 0 || sum.Duration > time.Minute {
				t.Errorf("duration %v", sum.Duration)
			}
		})
	}
}

// failWriter fails once n bytes were written.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteStopsOnOutputError(t *testing.T) {
	root := fixture(t, 100000)
	fds := openFDs(t)
	defer func() {
		if n := openFDs(t); n != fds {
			t.Errorf("open fds: %d before, %d after: a leak", fds, n)
		}
	}()
	_, err := Write(context.Background(), &failWriter{n: 300 << 10}, root, Options{Workers: 3, Window: 8})
	if err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("Write to a failing writer = %v, want disk full", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Write(ctx, io.Discard, root, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Write with a canceled context = %v", err)
	}
}

func TestWriteFileInsideRoot(t *testing.T) {
	root := fixture(t, 100000)
	out := filepath.Join(root, "etc", "self.tar.gz")
	if _, err := WriteFile(context.Background(), out, root, Options{Compression: CompressGzip}); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	got, global := readEntries(t, zr)
	for name := range got {
		if strings.Contains(name, "self.tar") {
			t.Errorf("the archive contains its own temporary file %s", name)
		}
	}
	if !strings.Contains(global, "uidmap=identity") {
		t.Errorf("global comment %q", global)
	}
	if e := got["./bin/ping"]; e.UID != 100000 || e.Xattrs[XattrCaps] != string(testutil.RawCaps(3, 100000)) {
		t.Errorf("identity backup changed ./bin/ping: uid %d caps %x", e.UID, e.Xattrs[XattrCaps])
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("archive mode: %v %v", fi.Mode(), err)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
