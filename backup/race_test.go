//go:build linux

package backup

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/internal/restorer"
	"github.com/nscap/nscap/internal/testutil"
)

// racerEnv names the directory the racer child watches.
const racerEnv = "NSCAP_TEST_RACER_DIR"

// racerMembers is the archive of the racer tests: n fifos (mode 06777)
// and character devices (1:3, mode 0666) in dev/.
func racerMembers(t *testing.T, n int) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for i := range n {
		h := &tar.Header{Name: fmt.Sprintf("dev/p%d", i), Typeflag: tar.TypeFifo, Mode: 0o6777, ModTime: time.Unix(1, 0)}
		if i%2 == 1 {
			h.Typeflag, h.Devmajor, h.Devminor, h.Mode = tar.TypeChar, 1, 3, 0o666
		}
		testutil.NoErr(t, tw.WriteHeader(h))
	}
	testutil.NoErr(t, tw.Close())
	return buf.Bytes()
}

// startRacer starts TestRacerChild as uid:gid (nil: the caller's ids),
// watching watch and pointing its symlinks at the files 0..n-1 of
// victims. stop ends it and returns how many names it swapped.
func startRacer(t *testing.T, watch, victims string, cred *syscall.Credential) (stop func() int) {
	racer := exec.Command("/proc/self/exe", "-test.run=^TestRacerChild$")
	racer.Env = append(os.Environ(), racerEnv+"="+watch+":"+victims)
	if cred != nil {
		racer.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	var out bytes.Buffer
	racer.Stdout, racer.Stderr = &out, &out
	testutil.NoErr(t, racer.Start())
	stopped := false
	stop = func() int {
		if !stopped {
			stopped = true
			_ = racer.Process.Kill()
			_ = racer.Wait()
		}
		return strings.Count(out.String(), "swapped")
	}
	t.Cleanup(func() { stop() })
	time.Sleep(200 * time.Millisecond) // its watch is set
	return stop
}

// victimsTouched counts the files 0..n-1 of victims whose mode, owner or
// mtime is no longer what makeVictims gave them.
func victimsTouched(t *testing.T, victims string, n, uid int) int {
	touched := 0
	for i := range n {
		fi, err := os.Stat(filepath.Join(victims, fmt.Sprint(i)))
		testutil.NoErr(t, err)
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode() != 0o600 || int(st.Uid) != uid || fi.ModTime().Unix() == 1 {
			touched++
			if touched < 5 {
				t.Errorf("victim %d changed: mode %v uid %d mtime %v", i, fi.Mode(), st.Uid, fi.ModTime())
			}
		}
	}
	return touched
}

// makeVictims makes n files of 0600 in victims, owned by uid:gid.
func makeVictims(t *testing.T, victims string, n, uid, gid int) {
	testutil.NoErr(t, os.MkdirAll(victims, 0o755))
	for i := range n {
		p := filepath.Join(victims, fmt.Sprint(i))
		testutil.NoErr(t, os.WriteFile(p, []byte("host"), 0o600))
		testutil.NoErr(t, os.Chown(p, uid, gid))
	}
}

const racerN = 2000

// TestRestoreSwapRacer is the attack of issue 12, item 1: DEST is the
// rootfs of a running container, whose root (host uid 100000) owns a
// directory in it. While root restores an archive of thousands of fifos
// and devices there, a racer process running as the container root
// watches the directory with inotify and renames a symlink to a host file
// over every new temporary name. Not one host file may change: restore
// applies owner, mode, xattrs and times through a descriptor of what it
// made, never by name.
func TestRestoreSwapRacer(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	testutil.NoErr(t, os.Chmod(dir, 0o755))
	victims := filepath.Join(dir, "host")
	makeVictims(t, victims, racerN, 0, 0)
	dest := filepath.Join(dir, "rootfs")
	testutil.NoErr(t, os.MkdirAll(filepath.Join(dest, "dev"), 0o755))
	testutil.NoErr(t, os.WriteFile(filepath.Join(dest, "keep"), nil, 0o644)) // not empty: no staging
	testutil.NoErr(t, os.Chown(dest, 100000, 100000))
	testutil.NoErr(t, os.Chown(filepath.Join(dest, "dev"), 100000, 100000))

	stop := startRacer(t, filepath.Join(dest, "dev"), victims, &syscall.Credential{Uid: 100000, Gid: 100000})
	var failed int
	_, err := Restore(t.Context(), bytes.NewReader(racerMembers(t, racerN)), dest, RestoreOptions{Workers: 4, Reporter: funcs{err: func(string, error) error {
		failed++ // a swapped entry is an error, not a victim
		return nil
	}}})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	swaps := stop()
	touched := victimsTouched(t, victims, racerN, 0)
	t.Logf("racer swapped %d temporary names; %d entries failed; %d host files touched", swaps, failed, touched)
	if touched > 0 {
		t.Fatalf("%d of %d host files changed by a restore racing a container", touched, racerN)
	}
}

// TestRestoreSwapHook makes the race of TestRestoreSwapRacer certain: a
// symlink to a host file replaces every fifo and device between its
// creation and the first change of its metadata. The restore fails those
// entries (ErrReplaced) and changes no host file.
func TestRestoreSwapHook(t *testing.T) {
	testutil.RequireRoot(t)
	dir := testutil.TempDir(t)
	victims := filepath.Join(dir, "host")
	makeVictims(t, victims, 20, 0, 0)
	i := 0
	restorer.TestHookSpecial = func(dirfd int, tmp string) {
		_ = unix.Unlinkat(dirfd, tmp, 0)
		_ = unix.Symlinkat(filepath.Join(victims, fmt.Sprint(i%20)), dirfd, tmp)
		i++
	}
	defer func() { restorer.TestHookSpecial = nil }()
	dest := filepath.Join(dir, "rootfs")
	testutil.NoErr(t, os.MkdirAll(filepath.Join(dest, "dev"), 0o755))
	testutil.NoErr(t, os.WriteFile(filepath.Join(dest, "keep"), nil, 0o644))
	var replaced int
	_, err := Restore(t.Context(), bytes.NewReader(racerMembers(t, 20)), dest, RestoreOptions{Reporter: funcs{err: func(_ string, err error) error {
		if errors.Is(err, ErrReplaced) {
			replaced++
		}
		return nil
	}}})
	testutil.NoErr(t, err)
	if touched := victimsTouched(t, victims, 20, 0); touched > 0 || replaced != 20 {
		t.Fatalf("%d host files changed, %d entries failed as replaced; want 0 and 20", touched, replaced)
	}
}

// racerRootlessEnv carries the work directory of TestRestoreSwapRacerRootless.
const racerRootlessEnv = "NSCAP_TEST_RACER_ROOTLESS"

// TestRestoreSwapRacerRootless is the rootless form of the attack: an
// unprivileged user restores through the helper user namespace into a
// directory the container can write, while a racer swaps symlinks to the
// user's own files in: none of them may change.
func TestRestoreSwapRacerRootless(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	const base = 480000
	dir := testutil.TempDir(t)
	testutil.Traversable(t, dir)
	u := testutil.User(t, testutil.UserOptions{Prefix: "rac", SubStart: base, SubCount: 65536})
	victims := filepath.Join(dir, "mine")
	makeVictims(t, victims, racerN, u.UID, u.GID)
	testutil.NoErr(t, os.Chown(victims, u.UID, u.GID))
	dest := filepath.Join(dir, "rootfs")
	testutil.NoErr(t, os.MkdirAll(filepath.Join(dest, "dev"), 0o755))
	testutil.NoErr(t, os.WriteFile(filepath.Join(dest, "keep"), nil, 0o644))
	testutil.NoErr(t, os.Chown(dest, u.UID, u.GID))
	// Writable by the container (and the racer).
	testutil.NoErr(t, os.Chmod(filepath.Join(dest, "dev"), 0o777))
	archive := filepath.Join(dir, "a.tar")
	testutil.NoErr(t, os.WriteFile(archive, racerMembers(t, racerN), 0o644))

	out := u.RunTest(t, "TestRestoreSwapRacerRootlessChild", fmt.Sprintf("%s=%s %d", racerRootlessEnv, dir, base))
	var res struct {
		Err          string
		Swaps, Fails int
	}
	js := testutil.ReadResult(t, out, &res)
	t.Logf("unprivileged child: %s", js)
	if res.Err != "" {
		t.Fatalf("RestoreRootless: %s", res.Err)
	}
	if touched := victimsTouched(t, victims, racerN, u.UID); touched > 0 {
		t.Fatalf("%d of %d of the user's files changed by a rootless restore racing a container", touched, racerN)
	}
}

// TestRestoreSwapRacerRootlessChild runs as the unprivileged user of
// TestRestoreSwapRacerRootless: the racer (as the user) and the restore.
func TestRestoreSwapRacerRootlessChild(t *testing.T) {
	spec := testutil.ChildEnv(t, racerRootlessEnv, "TestRestoreSwapRacerRootless")
	dir, base, _ := strings.Cut(spec, " ")
	stop := startRacer(t, filepath.Join(dir, "rootfs", "dev"), filepath.Join(dir, "mine"), nil)
	var res struct {
		Err          string
		Swaps, Fails int
	}
	f, err := os.Open(filepath.Join(dir, "a.tar"))
	testutil.NoErr(t, err)
	defer f.Close()
	_, err = RestoreRootless(t.Context(), f, filepath.Join(dir, "rootfs"), RestoreOptions{
		UIDMap: mustMap(t, "0:"+base+":65536"), Workers: 4,
		Reporter: funcs{err: func(string, error) error { res.Fails++; return nil }},
	}, RootlessOptions{})
	if err != nil {
		res.Err = err.Error()
	}
	res.Swaps = stop()
	testutil.PrintResult(t, res)
}

// TestRacerChild is the racer of TestRestoreSwapRacer (as the container's
// root): every name created in the watched directory is replaced by a
// symlink to a host file.
func TestRacerChild(t *testing.T) {
	spec := testutil.ChildEnv(t, racerEnv, "TestRestoreSwapRacer")
	watch, victims, _ := strings.Cut(spec, ":")
	fd, err := unix.InotifyInit1(0)
	testutil.NoErr(t, err)
	_, err = unix.InotifyAddWatch(fd, watch, unix.IN_CREATE|unix.IN_MOVED_TO)
	testutil.NoErr(t, err)
	// Links made ahead: on an event, one rename is all that is left to do.
	links := make([]string, 0, racerN)
	for i := range racerN {
		link := filepath.Join(watch, fmt.Sprintf("racer%d", i))
		if os.Symlink(filepath.Join(victims, fmt.Sprint(i)), link) == nil {
			links = append(links, link)
		}
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			base := string(bytes.TrimRight(name, "\x00"))
			if !strings.HasPrefix(base, restorer.TmpPrefix) || len(links) == 0 {
				continue
			}
			link := links[len(links)-1]
			links = links[:len(links)-1]
			if unix.Rename(link, filepath.Join(watch, base)) == nil {
				fmt.Println("swapped", base)
			}
		}
	}
}
