package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
)

func TestNewSetCmd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		argv    string
		want    setOptions
		wantErr string
	}{
		{argv: "cap_net_raw+ep f", want: setOptions{Caps: "cap_net_raw+ep", Paths: []string{"f"}, RootID: noRootID}},
		{argv: "- f g", want: setOptions{Caps: "-", Paths: []string{"f", "g"}, RootID: noRootID}},
		{argv: "-v =ep f", want: setOptions{Caps: "=ep", Paths: []string{"f"}, RootID: noRootID, Verify: true}},
		{argv: "--rootid 100000 cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: 100000}},
		{argv: "--rootid 0 cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: 0}},
		{argv: "--rootid 4294967294 cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: 4294967294}},
		{argv: "--pid 1 cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: noRootID, Maps: mapFlags{PID: 1}}},
		{argv: "--uidmap 0:100000:65536 cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: noRootID, Maps: mapFlags{UIDMap: "0:100000:65536"}}},
		{argv: "--uidmap 0:100000:1 --uidmap 1:200000:10 --ns-uid 5 cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: noRootID, Maps: mapFlags{UIDMap: "0:100000:1,1:200000:10"}, NsUID: 5}},
		{argv: "--json -q cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: noRootID, JSON: true, Quiet: true}},
		{argv: "cap_chown+p", wantErr: "missing CAPS and PATH"},
		{argv: "", wantErr: "missing CAPS and PATH"},
		{argv: "--rootid 1 --pid 2 cap_chown+p f", wantErr: "--rootid, --uidmap, --pid and --oci-config exclude each other"},
		{argv: "--pid 2 --uidmap 0:1:1 cap_chown+p f", wantErr: "--rootid, --uidmap, --pid and --oci-config exclude each other"},
		{argv: "--rootid 1 --uidmap 0:1:1 cap_chown+p f", wantErr: "--rootid, --uidmap, --pid and --oci-config exclude each other"},
		{argv: "--oci-config c.json --pid 3 cap_chown+p f", wantErr: "--rootid, --uidmap, --pid and --oci-config exclude each other"},
		{argv: "--oci-config c.json --ns-uid 7 cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: noRootID, Maps: mapFlags{OCIConfig: "c.json"}, NsUID: 7}},
		{argv: "--pid 3 --ns-uid 7 cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: noRootID, Maps: mapFlags{PID: 3}, NsUID: 7}},
		{argv: "--helper always --uidmap 0:1:1 cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: noRootID, Maps: mapFlags{UIDMap: "0:1:1"}, Helper: fcaps.HelperAlways}},
		{argv: "--helper never cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: noRootID, Helper: fcaps.HelperNever}},
		{argv: "--helper sometimes cap_chown+p f", wantErr: `invalid argument "sometimes" for "--helper" flag: want auto, always or never`},
		{argv: "--rootid 1 --ns-uid 3 cap_chown+p f", wantErr: "--ns-uid needs --pid, --uidmap or --oci-config"},
		{argv: "--rootid -1 cap_chown+p f", wantErr: "--rootid -1: want a uid from 0 to 4294967294"},
		{argv: "--rootid 4294967295 cap_chown+p f", wantErr: "--rootid 4294967295: want a uid from 0 to 4294967294"},
		{argv: "--rootid x cap_chown+p f", wantErr: `invalid argument "x" for "--rootid" flag: strconv.ParseInt: parsing "x": invalid syntax`},
		{argv: "--pid 0 cap_chown+p f", wantErr: "--pid 0: want a positive process id"},
		{argv: "--ns-uid 3 cap_chown+p f", wantErr: "--ns-uid needs --pid, --uidmap or --oci-config"},
		{argv: "--uidmap 0:100000:65536 --gidmap 0:300000:65536 cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: noRootID, Maps: mapFlags{UIDMap: "0:100000:65536", GIDMap: "0:300000:65536"}}},
		{argv: "--gidmap 0:1:1 cap_chown+p f", wantErr: "--gidmap needs --uidmap"},
		{argv: "--oci-config= cap_chown+p f", wantErr: "--oci-config: empty file name"},
		{argv: "-r f", wantErr: "unknown shorthand flag: 'r' in -r"},
		{argv: "--root rootfs --uidmap 0:100000:65536 cap_chown+p rootfs/f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"rootfs/f"}, RootID: noRootID, Maps: mapFlags{UIDMap: "0:100000:65536"}, Root: "rootfs"}},
		{argv: "--root rootfs --pid 3 cap_chown+p rootfs/f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"rootfs/f"}, RootID: noRootID, Maps: mapFlags{PID: 3}, Root: "rootfs"}},
		{argv: "--root= cap_chown+p f", wantErr: "--root: empty directory name"},
		{argv: "--pid 3 --host cap_chown+p f", want: setOptions{Caps: "cap_chown+p", Paths: []string{"f"}, RootID: noRootID, Maps: mapFlags{PID: 3}, Host: true}},
		{argv: "--host cap_chown+p f", wantErr: "--host needs --pid"},
		{argv: "--uidmap 0:1:1 --host cap_chown+p f", wantErr: "--host needs --pid"},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			t.Parallel()
			got, err := parseCmd(t, newSetCmd, tc.argv)
			if errString(err) != tc.wantErr {
				t.Fatalf("set %s: error %q, want %q", tc.argv, errString(err), tc.wantErr)
			}
			if err != nil {
				if exitCodeFor(err) != ExitUsage {
					t.Errorf("set %s: error %v is not a usage error", tc.argv, err)
				}
				return
			}
			if diff := cmp.Diff(tc.want, *got, cmpopts.IgnoreFields(setOptions{}, "IO", "RootOf", "ReadMaps", "PIDNS"), cmpopts.IgnoreUnexported(setOptions{}, mapFlags{})); diff != "" {
				t.Errorf("set %s: options mismatch (-want +got):\n%s", tc.argv, diff)
			}
		})
	}
}

func TestNewSetCmdBadMap(t *testing.T) {
	t.Parallel()
	_, err := parseCmd(t, newSetCmd, "--uidmap 0:100000 cap_chown+p f")
	var fe *FlagError
	if !errors.As(err, &fe) {
		t.Fatalf("set --uidmap 0:100000: error %v, want a *FlagError", err)
	}
}

func TestResolveRootID(t *testing.T) {
	t.Parallel()
	rootOf := func(pid int) (uint32, error) {
		switch pid {
		case 1, 5:
			return 0, nil
		case 42:
			return 100000, nil
		}
		return 0, syscall.ESRCH
	}
	// Pid 1 is in the caller's (initial) namespace, 42 in a container's,
	// 5 in a child namespace whose root is the caller's root (unshare -r).
	pidNS := func(pid int) (pidNS, error) {
		switch pid {
		case 1:
			return pidNS{Ref: "user:[4026531837]", Self: true, Initial: true}, nil
		case 5:
			return pidNS{Ref: "user:[4026532000]"}, nil
		case 42:
			return pidNS{Ref: "user:[4026532001]"}, nil
		}
		return pidNS{}, syscall.ENOENT
	}
	readMaps := func(int) (uid, gid userns.Map, err error) {
		m, err := userns.ParseMap("0:100000:65536")
		return m, m, err
	}
	tests := []struct {
		argv       string
		wantRootID uint32
		wantOK     bool
		wantErr    string
	}{
		{argv: "x f"},
		{argv: "--rootid 0 x f", wantOK: true},
		{argv: "--rootid 7 x f", wantRootID: 7, wantOK: true},
		{argv: "--pid 42 x f", wantRootID: 100000, wantOK: true},
		{argv: "--pid 42 --ns-uid 3 x f", wantRootID: 100003, wantOK: true},
		{argv: "--pid 42 --host x f", wantRootID: 100000, wantOK: true},
		// The caller's own namespace, the host's: refused without --host.
		{argv: "--pid 1 x f", wantErr: "--pid 1: the process is in the initial user namespace user:[4026531837] (the host's), not in a container's: caps for it are revision 2, honoured on the whole host; give the pid of a process inside the container, or add --host to write them anyway"},
		{argv: "--pid 1 --ns-uid 1000 x f", wantErr: "--pid 1: the process is in the initial user namespace user:[4026531837] (the host's), not in a container's: its uid 1000 is uid 1000 of the host; give the pid of a process inside the container, or add --host to write them anyway"},
		{argv: "--pid 5 x f", wantErr: "--pid 5: the process is in the user namespace user:[4026532000], whose root is nscap's own root (uid 0), not in a container's: caps for it are revision 2, honoured on the whole host; give the pid of a process inside the container, or add --host to write them anyway"},
		{argv: "--pid 1 --host x f"}, // revision 2, as asked
		{argv: "--pid 1 --host --ns-uid 1000 x f", wantRootID: 1000, wantOK: true},
		{argv: "--pid 99 x f", wantErr: "pid 99: no such process"},
		{argv: "--uidmap 0:100000:65536 x f", wantRootID: 100000, wantOK: true},
		{argv: "--uidmap 0:100000:65536 --ns-uid 1000 x f", wantRootID: 101000, wantOK: true},
		{argv: "--uidmap 0:0:1 x f"},
		{argv: "--uidmap 0:100000:65536 --ns-uid 65536 x f", wantErr: "uid 65536 in the user namespace of --uidmap 0:100000:65536: userns: namespace id 65536 not mapped by 0:100000:65536"},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			t.Parallel()
			opts, err := parseCmd(t, newSetCmd, tc.argv)
			if err != nil {
				t.Fatal(err)
			}
			opts.RootOf, opts.PIDNS, opts.Maps.readMaps = rootOf, pidNS, readMaps
			r, ok, err := opts.resolveRootID()
			if errString(err) != tc.wantErr || r != tc.wantRootID || ok != tc.wantOK {
				t.Errorf("set %s: resolveRootID() = %d, %v, %v; want %d, %v, error %q", tc.argv, r, ok, err, tc.wantRootID, tc.wantOK, tc.wantErr)
			}
			if err != nil && tc.wantErr != "pid 99: no such process" && exitCodeFor(err) != ExitUsage {
				t.Errorf("set %s: error %v is not a usage error", tc.argv, err)
			}
		})
	}
}

func TestReadCapsText(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"":                                   "",
		"cap_chown+ep":                       "cap_chown+ep",
		"cap_chown+ep\n":                     "cap_chown+ep",
		"cap_chown=p\ncap_net_raw=i\n":       "cap_chown=p cap_net_raw=i",
		"cap_chown=p\r\n\ncap_net_raw=i\n":   "cap_chown=p",
		"\ncap_chown+ep":                     "",
		"cap_chown=p\ncap_net_raw+p\n\nxx\n": "cap_chown=p cap_net_raw+p",
	}
	for in, want := range tests {
		got, err := readCapsText(stringsReader(in))
		if err != nil || got != want {
			t.Errorf("readCapsText(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestRunSet(t *testing.T) {
	fx := newFixture(t)
	f := writeFile(t, fx.path("set-target"))
	// A file of the container at 200000 (set refuses a file whose owner
	// the namespace of --uidmap does not map).
	if err := os.Chown(f, 200000, 200000); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		stdin    string
		want     result
		wantHex  string // getfattr of f afterwards, "" for none
		wantKeep bool   // f unchanged
	}{
		{
			name:    "v2",
			args:    []string{"set", "cap_net_raw+ep", f},
			want:    result{},
			wantHex: "0x0100000200200000000000000000000000000000",
		},
		{
			name:    "stdin",
			args:    []string{"set", "-", f},
			stdin:   "cap_net_raw=p\ncap_chown=i\n\n",
			wantHex: "0x0000000200200000010000000000000000000000",
		},
		{
			name:    "uidmap",
			args:    []string{"set", "--uidmap", "0:200000:65536", "--ns-uid", "1", "cap_net_raw+ep", f},
			wantHex: "0x0100000300200000000000000000000000000000410d0300",
		},
		{
			name:     "uidmap: owner not mapped",
			args:     []string{"set", "--uidmap", "0:300000:65536", "cap_net_raw+ep", f},
			want:     result{Code: ExitError, Stderr: "nscap: set $DIR/set-target: outside the user namespace of --uidmap 0:300000:65536: the file's owner uid 200000 is not mapped by its uid map 0:300000:65536; nothing written\n"},
			wantKeep: true,
		},
		{
			name:     "uidmap: group not mapped",
			args:     []string{"set", "--uidmap", "0:200000:65536", "--gidmap", "0:300000:65536", "cap_net_raw+ep", f},
			want:     result{Code: ExitError, Stderr: "nscap: set $DIR/set-target: outside the user namespace of --uidmap 0:200000:65536: the file's group gid 200000 is not mapped by its gid map 0:300000:65536; nothing written\n"},
			wantKeep: true,
		},
		{
			name:    "pid of self with --host: revision 2",
			args:    []string{"set", "--pid", itoa(os.Getpid()), "--host", "cap_net_raw+ep", f},
			wantHex: "0x0100000200200000000000000000000000000000",
		},
		{
			name:     "pid of self: refused without --host",
			args:     []string{"set", "--pid", itoa(os.Getpid()), "cap_net_raw+ep", f},
			want:     result{Code: ExitUsage, Stderr: "nscap: set: --pid " + itoa(os.Getpid()) + ": the process is in the initial user namespace user:[4026531837] (the host's), not in a container's: caps for it are revision 2, honoured on the whole host; give the pid of a process inside the container, or add --host to write them anyway\nRun 'nscap set --help' for usage.\n"},
			wantKeep: true,
		},
		{
			name:    "rootid: owner outside the usual range warned",
			args:    []string{"set", "--rootid", "100000", "cap_net_raw+ep", f},
			want:    result{Stderr: "nscap: warning: set $DIR/set-target: the file's owner uid 200000 is outside 100000-165535, the usual 65536 ids of a user namespace whose root is 100000: a file of another container? (written; name the map with --uidmap, --pid or --oci-config to have such files refused)\n"},
			wantHex: "0x0100000300200000000000000000000000000000a0860100",
		},
		{
			name:    "rootid: owner inside the usual range",
			args:    []string{"set", "--rootid", "200000", "cap_net_raw+ep", f},
			wantHex: "0x0100000300200000000000000000000000000000400d0300",
		},
		{
			name:     "bad text",
			args:     []string{"set", "cap_net_raw=ep cap_chown=i", f},
			want:     result{Code: ExitError, Stderr: `nscap: set: caps "cap_net_raw=ep cap_chown=i": effective set must be empty or include all permitted and inheritable capabilities (not effective: cap_chown)` + "\n"},
			wantKeep: true,
		},
		{
			name:     "verify ok",
			args:     []string{"set", "-v", "cap_net_raw+pe", fx.path("d/v2")},
			want:     result{Stdout: "$DIR/d/v2: OK\n"},
			wantKeep: true,
		},
		{
			name:     "verify differs",
			args:     []string{"set", "-v", "cap_net_raw+p", fx.path("d/v2"), fx.path("d/none")},
			want:     result{Code: ExitError, Stdout: "$DIR/d/v2 differs in [e]\n$DIR/d/none differs in [p]\n"},
			wantKeep: true,
		},
		{
			name:     "verify rootid",
			args:     []string{"set", "-v", "cap_net_raw+ep", fx.path("d/v3")},
			want:     result{Code: ExitError, Stdout: "nsowner[got=100000, want=0],$DIR/d/v3 differs in [pie]\n"},
			wantKeep: true,
		},
		{
			name:     "verify ok rootid",
			args:     []string{"set", "-v", "--rootid", "100000", "cap_net_admin,cap_net_raw+eip", fx.path("d/v3")},
			want:     result{Stdout: "$DIR/d/v3: OK\n"},
			wantKeep: true,
		},
		{
			name:     "symlink, fifo and directory refused",
			args:     []string{"set", "cap_chown+ep", fx.path("d/link"), fx.path("d/fifo"), fx.path("d")},
			want:     result{Code: ExitError, Stderr: "nscap: set $DIR/d/link: not a regular file: it is a symbolic link (capabilities act only on regular files)\nnscap: set $DIR/d/fifo: not a regular file: it is a fifo (capabilities act only on regular files)\nnscap: set $DIR/d: not a regular file: it is a directory (capabilities act only on regular files)\n"},
			wantKeep: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := syscall.Removexattr(f, "security.capability"); err != nil && !errors.Is(err, syscall.ENODATA) {
				t.Fatal(err)
			}
			r := nscap(t, tc.stdin, tc.args...)
			r.Stdout, r.Stderr = fx.relative(r.Stdout), fx.relative(r.Stderr)
			if diff := cmp.Diff(tc.want, r); diff != "" {
				t.Errorf("nscap %q mismatch (-want +got):\n%s", tc.args, diff)
			}
			got := rawHex(t, f)
			if tc.wantKeep {
				tc.wantHex = ""
			}
			if got != tc.wantHex {
				t.Errorf("nscap %q: %s has security.capability %q, want %q", tc.args, f, got, tc.wantHex)
			}
		})
	}
	// The symlink's target was left alone.
	if got := rawHex(t, fx.path("d/v2")); got != "0x0100000200200000000000000000000000000000" {
		t.Errorf("symlink target d/v2 changed: %s", got)
	}
}

func TestResolveRootIDOCIAndNsUID(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"ociVersion":"1.0.2","linux":{"uidMappings":[{"containerID":0,"hostID":300000,"size":65536}],"gidMappings":[{"containerID":0,"hostID":300000,"size":65536}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	self := itoa(os.Getpid())
	tests := []struct {
		argv       string
		wantRootID uint32
		wantOK     bool
		wantErr    string
	}{
		{argv: "--oci-config " + cfg + " x f", wantRootID: 300000, wantOK: true},
		{argv: "--oci-config " + cfg + " --ns-uid 1000 x f", wantRootID: 301000, wantOK: true},
		{argv: "--oci-config " + cfg + " --ns-uid 65536 x f", wantErr: "uid 65536 in the user namespace of " + cfg + ": userns: namespace id 65536 not mapped by 0:300000:65536"},
		{argv: "--oci-config /nonexistent/config.json x f", wantErr: "open /nonexistent/config.json: no such file or directory"},
		// The caller's own namespace: uid U is U, with --host only.
		{argv: "--pid " + self + " --host --ns-uid 5 x f", wantRootID: 5, wantOK: true},
		{argv: "--pid " + self + " --ns-uid 5 x f", wantErr: "--pid " + self + ": the process is in "},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			t.Parallel()
			opts, err := parseCmd(t, newSetCmd, tc.argv)
			if err != nil {
				t.Fatal(err)
			}
			r, ok, err := opts.resolveRootID()
			if !strings.HasPrefix(errString(err), tc.wantErr) || (err == nil) != (tc.wantErr == "") || r != tc.wantRootID || ok != tc.wantOK {
				t.Errorf("set %s: resolveRootID() = %d, %v, %q; want %d, %v, %q", tc.argv, r, ok, errString(err), tc.wantRootID, tc.wantOK, tc.wantErr)
			}
		})
	}
}

// chrootOp is a helper operation of these tests: the helper process
// chroots into the directory of the request ("" for none) and returns its
// pid, to serve as a container's process for --pid.
const chrootOp = "clitest.chroot"

func init() {
	userns.RegisterHelperOp(chrootOp, func(raw json.RawMessage, _ userns.HelperEmit) (json.RawMessage, error) {
		var dir string
		if err := json.Unmarshal(raw, &dir); err != nil {
			return nil, err
		}
		if dir != "" {
			if err := syscall.Chroot(dir); err != nil {
				return nil, err
			}
			if err := syscall.Chdir("/"); err != nil {
				return nil, err
			}
		}
		return json.Marshal(os.Getpid())
	})
}

// containerProcess starts a process of a container: in a new user
// namespace whose uid and gid maps are m, chrooted into dir unless dir is
// "" (then it shares the caller's root). It ends with the test.
func containerProcess(t *testing.T, m, dir string) int {
	t.Helper()
	um, err := userns.ParseMap(m)
	if err != nil {
		t.Fatal(err)
	}
	h, err := userns.StartHelper(context.Background(), userns.HelperOptions{UIDMap: um, GIDMap: um})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	var pid int
	if err := h.Call(chrootOp, dir, &pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestSetRemovePlantedSymlink is the attack of issue 12: the root user of
// a container (0:100000:65536), who owns the directories of its rootfs,
// plants rootfs/usr/bin -> a host directory holding a ping; the README's
// "nscap set --pid P cap_net_raw=ep ROOTFS/usr/bin/ping" must not cap the
// host's ping (getcap is the oracle). set and remove refuse the link
// outside a root and resolve it inside the container's root with --root
// or --pid, where it names ROOTFS/<host dir>/ping; a link that stays
// inside (rootfs/sbin -> usr/sbin) resolves there too.
func TestSetRemovePlantedSymlink(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "getcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir) // for the container's processes
	host := filepath.Join(dir, "host")
	rootfs := filepath.Join(dir, "rootfs")
	hostPing := filepath.Join(host, "ping")
	inside := rootfs + hostPing // what rootfs/usr/bin/ping is in the container
	sbinPing := filepath.Join(rootfs, "usr/sbin/ping")
	for _, d := range []string{host, filepath.Join(rootfs, "usr/sbin"), filepath.Dir(inside)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, hostPing)
	writeFile(t, inside)
	writeFile(t, sbinPing)
	if err := os.Symlink(host, filepath.Join(rootfs, "usr/bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/sbin", filepath.Join(rootfs, "sbin")); err != nil {
		t.Fatal(err)
	}
	if err := filepath.WalkDir(rootfs, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 100000, 100000)
	}); err != nil {
		t.Fatal(err)
	}
	// The host's ping belongs to the container's range too: the owner
	// check cannot tell it from the container's; only the lookup can.
	if err := os.Chown(hostPing, 100000, 100000); err != nil {
		t.Fatal(err)
	}
	pid := strconv.Itoa(containerProcess(t, "0:100000:65536", rootfs))
	shared := strconv.Itoa(containerProcess(t, "0:100000:65536", ""))
	planted := filepath.Join(rootfs, "usr/bin/ping")
	refusal := "nscap: %s $ROOTFS/usr/bin/ping: $ROOTFS/usr/bin is a symbolic link: refusing to follow it; " +
		"give a path without symlinks, or name a container's root with --root DIR to resolve PATH inside it as the container does\n"
	const v3 = "cap_net_raw=ep [rootid=100000]"

	steps := []struct {
		name   string
		args   []string
		want   result
		inside string // getcap -n of the container's ping afterwards: TEXT [rootid=N], or ""
		sbin   string // and of rootfs/usr/sbin/ping
	}{
		{name: "set without a root", args: []string{"set", "--uidmap", "0:100000:65536", "cap_net_raw=ep", planted}, want: result{Code: ExitError, Stderr: strings.Replace(refusal, "%s", "set", 1)}},
		{name: "set --rootid", args: []string{"set", "--rootid", "100000", "cap_net_raw=ep", planted}, want: result{Code: ExitError, Stderr: strings.Replace(refusal, "%s", "set", 1)}},
		{name: "set -v without a root", args: []string{"set", "-v", "cap_net_raw=ep", planted}, want: result{Code: ExitError, Stderr: strings.Replace(refusal, "%s", "verify", 1)}},
		{name: "set --pid of a process sharing the host's root", args: []string{"set", "--pid", shared, "cap_net_raw=ep", planted}, want: result{Code: ExitError, Stderr: strings.Replace(refusal, "%s", "set", 1)}},
		{name: "set --pid, a path through its root", args: []string{"set", "--pid", pid, "cap_net_raw=ep", planted}, inside: v3},
		{name: "set -v --pid", args: []string{"set", "-v", "--pid", pid, "cap_net_raw=ep", planted}, want: result{Stdout: "$ROOTFS/usr/bin/ping: OK\n"}, inside: v3},
		{name: "remove without a root", args: []string{"remove", planted}, want: result{Code: ExitError, Stderr: strings.Replace(refusal, "%s", "remove", 1)}, inside: v3},
		{name: "remove --pid, a path in /proc/PID/root", args: []string{"remove", "--pid", pid, "/proc/" + pid + "/root/usr/bin/ping"}},
		{name: "set --pid, a path in /proc/PID/root, through the helper", args: []string{"set", "--helper", "always", "--pid", pid, "cap_net_raw=ep", "/proc/" + pid + "/root/usr/bin/ping"}, inside: v3},
		{name: "remove --root", args: []string{"remove", "--root", rootfs, planted}},
		{name: "set --root", args: []string{"set", "--uidmap", "0:100000:65536", "--root", rootfs, "cap_net_raw=ep", planted}, inside: v3},
		{name: "set --root, a link inside the root", args: []string{"set", "--uidmap", "0:100000:65536", "--root", rootfs, "cap_net_raw=ep", filepath.Join(rootfs, "sbin/ping")}, inside: v3, sbin: v3},
		{name: "remove --root through the helper", args: []string{"remove", "--helper", "always", "--uidmap", "0:100000:65536", "--root", rootfs, planted}, sbin: v3},
		{name: "set --root through the helper", args: []string{"set", "--helper", "always", "--uidmap", "0:100000:65536", "--root", rootfs, "cap_net_raw=ep", planted}, inside: v3, sbin: v3},
		{
			name: "set --root, a path outside it", args: []string{"set", "--uidmap", "0:100000:65536", "--root", rootfs, "cap_net_raw=ep", hostPing},
			want:   result{Code: ExitError, Stderr: "nscap: set $HOST/ping: outside the root $ROOTFS: the path is neither written below it nor passes through its directory\n"},
			inside: v3, sbin: v3,
		},
		{
			name: "set --root, a link before the root", args: []string{"set", "--rootid", "100000", "--root", rootfs, "cap_net_raw=ep", "/proc/self/cwd/x"},
			want:   result{Code: ExitError, Stderr: "nscap: set /proc/self/cwd/x: /proc/self is a symbolic link: refusing to follow it; only a PATH written below --root $ROOTFS is resolved inside it\n"},
			inside: v3, sbin: v3,
		},
		{
			name: "set --root that does not exist", args: []string{"set", "--rootid", "100000", "--root", rootfs + "/nothing", "cap_net_raw=ep", planted},
			want:   result{Code: ExitError, Stderr: "nscap: set: --root $ROOTFS/nothing: open $ROOTFS/nothing: no such file or directory\n"},
			inside: v3, sbin: v3,
		},
	}
	rel := func(s string) string {
		return strings.ReplaceAll(strings.ReplaceAll(s, rootfs, "$ROOTFS"), host, "$HOST")
	}
	getcap := func(p string) string {
		out := strings.TrimSpace(runTool(t, "getcap", "-n", p))
		return strings.TrimSpace(strings.TrimPrefix(out, p))
	}
	for _, st := range steps {
		r := nscap(t, "", st.args...)
		r.Stdout, r.Stderr = rel(r.Stdout), rel(r.Stderr)
		if diff := cmp.Diff(st.want, r); diff != "" {
			t.Errorf("%s: nscap %q mismatch (-want +got):\n%s", st.name, st.args, diff)
		}
		if got := getcap(hostPing); got != "" {
			t.Fatalf("%s: nscap %q capped the host's %s: %s", st.name, st.args, hostPing, got)
		}
		if got := getcap(inside); got != st.inside {
			t.Errorf("%s: getcap -n of the container's ping = %q, want %q", st.name, got, st.inside)
		}
		if got := getcap(sbinPing); got != st.sbin {
			t.Errorf("%s: getcap -n of rootfs/usr/sbin/ping = %q, want %q", st.name, got, st.sbin)
		}
	}
}

// TestSetPIDHostNamespace: set --pid of a process whose caps would be
// honoured on the whole host, a child namespace whose root is host root
// (unshare -r as root), is refused naming the namespace (its inode, as
// /proc/PID/ns/user reads) and writes nothing; with --host it writes
// revision 2 (getcap is the oracle); a container's process needs no --host.
func TestSetPIDHostNamespace(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireUserNS(t)
	testutil.RequireTool(t, "getcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	testutil.Traversable(t, dir)
	pids := testutil.Nest(t, []string{"0:0:65536"}, 0)
	rootPID := itoa(pids[0])
	link, err := os.Readlink("/proc/" + rootPID + "/ns/user")
	if err != nil {
		t.Fatal(err)
	}
	ct := itoa(containerProcess(t, "0:100000:65536", ""))
	f := writeFile(t, filepath.Join(dir, "f"))

	r := nscap(t, "", "set", "--pid", rootPID, "cap_net_raw+ep", f)
	want := "nscap: set: --pid " + rootPID + ": the process is in the user namespace " + link +
		", whose root is nscap's own root (uid 0), not in a container's: caps for it are revision 2, honoured on the whole host;" +
		" give the pid of a process inside the container, or add --host to write them anyway\nRun 'nscap set --help' for usage.\n"
	if r.Code != ExitUsage || r.Stderr != want {
		t.Errorf("set --pid %s: exit %d, stderr %q; want exit %d, stderr %q", rootPID, r.Code, r.Stderr, ExitUsage, want)
	}
	if got := runTool(t, "getcap", f); got != "" {
		t.Errorf("refused set wrote %q", got)
	}
	if r := nscap(t, "", "set", "--pid", rootPID, "--host", "cap_net_raw+ep", f); r.Code != ExitOK || r.Stderr != "" {
		t.Errorf("set --pid %s --host: %+v", rootPID, r)
	}
	if got := runTool(t, "getcap", "-n", f); got != f+" cap_net_raw=ep\n" {
		t.Errorf("set --pid --host: getcap -n %q, want revision 2", got)
	}
	if err := os.Chown(f, 100000, 100000); err != nil {
		t.Fatal(err)
	}
	if r := nscap(t, "", "set", "--pid", ct, "cap_net_raw+ep", f); r.Code != ExitOK || r.Stderr != "" {
		t.Errorf("set --pid %s (a container's): %+v", ct, r)
	}
	if got := runTool(t, "getcap", "-n", f); got != f+" cap_net_raw=ep [rootid=100000]\n" {
		t.Errorf("set --pid of a container: getcap -n %q, want rootid 100000", got)
	}
}
