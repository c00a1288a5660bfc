package cli

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nscap/nscap/fcaps"
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
		{argv: "--helper sometimes cap_chown+p f", wantErr: `--helper: helper mode "sometimes": want auto, always or never`},
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
			if diff := cmp.Diff(tc.want, *got, cmpopts.IgnoreFields(setOptions{}, "IO", "RootOf", "ReadMaps"), cmpopts.IgnoreUnexported(setOptions{}, mapFlags{})); diff != "" {
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
		case 1:
			return 0, nil
		case 42:
			return 100000, nil
		}
		return 0, syscall.ESRCH
	}
	tests := []struct {
		argv       string
		wantRootID uint32
		wantOK     bool
		wantErr    bool
	}{
		{argv: "x f"},
		{argv: "--rootid 0 x f", wantOK: true},
		{argv: "--rootid 7 x f", wantRootID: 7, wantOK: true},
		{argv: "--pid 42 x f", wantRootID: 100000, wantOK: true},
		{argv: "--pid 1 x f"}, // the caller's own root: revision 2
		{argv: "--pid 99 x f", wantErr: true},
		{argv: "--uidmap 0:100000:65536 x f", wantRootID: 100000, wantOK: true},
		{argv: "--uidmap 0:100000:65536 --ns-uid 1000 x f", wantRootID: 101000, wantOK: true},
		{argv: "--uidmap 0:0:1 x f"},
		{argv: "--uidmap 0:100000:65536 --ns-uid 65536 x f", wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			t.Parallel()
			opts, err := parseCmd(t, newSetCmd, tc.argv)
			if err != nil {
				t.Fatal(err)
			}
			opts.RootOf = rootOf
			r, ok, err := opts.resolveRootID()
			if (err != nil) != tc.wantErr || r != tc.wantRootID || ok != tc.wantOK {
				t.Errorf("set %s: resolveRootID() = %d, %v, %v; want %d, %v, error %v", tc.argv, r, ok, err, tc.wantRootID, tc.wantOK, tc.wantErr)
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
			name:    "rootid",
			args:    []string{"set", "--rootid", "100000", "cap_net_raw+ep", f},
			wantHex: "0x0100000300200000000000000000000000000000a0860100",
		},
		{
			name:    "uidmap",
			args:    []string{"set", "--uidmap", "0:200000:65536", "--ns-uid", "1", "cap_net_raw+ep", f},
			wantHex: "0x0100000300200000000000000000000000000000410d0300",
		},
		{
			name:    "pid of self is host root: revision 2",
			args:    []string{"set", "--pid", itoa(os.Getpid()), "cap_net_raw+ep", f},
			wantHex: "0x0100000200200000000000000000000000000000",
		},
		{
			name:     "bad text",
			args:     []string{"set", "cap_net_raw=ep cap_chown=i", f},
			want:     result{Code: ExitError, Stderr: `nscap: set: caps "cap_net_raw=ep cap_chown=i": xattrfmt: effective set must be empty or include all permitted and inheritable capabilities (not effective: cap_chown)` + "\n"},
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
		// The caller's own namespace: uid U is U.
		{argv: "--pid " + self + " --ns-uid 5 x f", wantRootID: 5, wantOK: true},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			t.Parallel()
			opts, err := parseCmd(t, newSetCmd, tc.argv)
			if err != nil {
				t.Fatal(err)
			}
			r, ok, err := opts.resolveRootID()
			if errString(err) != tc.wantErr || r != tc.wantRootID || ok != tc.wantOK {
				t.Errorf("set %s: resolveRootID() = %d, %v, %q; want %d, %v, %q", tc.argv, r, ok, errString(err), tc.wantRootID, tc.wantOK, tc.wantErr)
			}
		})
	}
}
