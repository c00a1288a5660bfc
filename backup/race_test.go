//go:build linux

package backup

import (
	"archive/tar"
	"bytes"
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

	"github.com/nscap/nscap/internal/testutil"
)

// racerEnv names the directory the racer child watches.
const racerEnv = "NSCAP_TEST_RACER_DIR"

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
	testutil.NoErr(t, os.Mkdir(victims, 0o755))
	const n = 2000
	for i := range n {
		testutil.NoErr(t, os.WriteFile(filepath.Join(victims, fmt.Sprint(i)), []byte("host"), 0o600))
	}
	dest := filepath.Join(dir, "rootfs")
	testutil.NoErr(t, os.MkdirAll(filepath.Join(dest, "dev"), 0o755))
	testutil.NoErr(t, os.WriteFile(filepath.Join(dest, "keep"), nil, 0o644)) // not empty: no staging
	testutil.NoErr(t, os.Chown(dest, 100000, 100000))
	testutil.NoErr(t, os.Chown(filepath.Join(dest, "dev"), 100000, 100000))

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

	racer := exec.Command("/proc/self/exe", "-test.run=^TestRacerChild$")
	racer.Env = append(os.Environ(), racerEnv+"="+filepath.Join(dest, "dev")+":"+victims)
	racer.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 100000, Gid: 100000}}
	var racerOut bytes.Buffer
	racer.Stdout, racer.Stderr = &racerOut, &racerOut
	testutil.NoErr(t, racer.Start())
	defer func() {
		_ = racer.Process.Kill()
		_ = racer.Wait()
	}()
	time.Sleep(200 * time.Millisecond) // its watch is set

	var failed int
	_, err := Restore(t.Context(), &buf, dest, RestoreOptions{Workers: 4, Error: func(string, error) error {
		failed++ // a swapped entry is an error, not a victim
		return nil
	}})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	_ = racer.Process.Kill()
	_ = racer.Wait()
	swaps := strings.Count(racerOut.String(), "swapped")
	touched := 0
	for i := range n {
		fi, err := os.Stat(filepath.Join(victims, fmt.Sprint(i)))
		testutil.NoErr(t, err)
		if st := fi.Sys().(*syscall.Stat_t); fi.Mode() != 0o600 || st.Uid != 0 || fi.ModTime().Unix() == 1 {
			touched++
			if touched < 5 {
				t.Errorf("host file %d changed: mode %v uid %d mtime %v", i, fi.Mode(), st.Uid, fi.ModTime())
			}
		}
	}
	t.Logf("racer swapped %d temporary names; %d entries failed; %d host files touched", swaps, failed, touched)
	if touched > 0 {
		t.Fatalf("%d of %d host files changed by a restore racing a container", touched, n)
	}
	if swaps == 0 {
		t.Logf("the racer won no race this run (output: %.200s)", racerOut.String())
	}
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
	buf := make([]byte, 64<<10)
	i := 0
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
			if !strings.HasPrefix(base, tmpPrefix) {
				continue
			}
			link := filepath.Join(watch, fmt.Sprintf("racer%d", i))
			if os.Symlink(filepath.Join(victims, fmt.Sprint(i%2000)), link) != nil {
				continue
			}
			i++
			if os.Rename(link, filepath.Join(watch, base)) == nil {
				fmt.Println("swapped", base)
			}
		}
	}
}
