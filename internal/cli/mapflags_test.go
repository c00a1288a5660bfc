package cli

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/spf13/pflag"

	"github.com/nscap/nscap/userns"
)

func TestMapFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oci := filepath.Join(dir, "config.json")
	if err := os.WriteFile(oci, []byte(`{"linux":{"uidMappings":[{"containerID":0,"hostID":100000,"size":65536}],`+
		`"gidMappings":[{"containerID":0,"hostID":300000,"size":100}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	badOCI := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badOCI, []byte(`{"linux":{"uidMappings":[{"containerID":0,"hostID":1,"size":0}]}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.json")
	readMaps := func(pid int) (uid, gid userns.Map, err error) {
		if pid != 42 {
			return uid, gid, errors.New("no such process")
		}
		uid, _ = userns.ParseMap("0:100000:1000")
		gid, _ = userns.ParseMap("0:200000:1000")
		return uid, gid, nil
	}
	tests := []struct {
		name           string
		args           []string
		want           mapFlags // after validate
		wantErr        string   // from validate (a usage error)
		wantUID        string   // from resolve
		wantGID        string
		wantResolveErr string
	}{
		{name: "none", wantUID: "", wantGID: ""},
		{
			name: "uidmap joined, gid defaults to uid", args: []string{"--uidmap", "0:100000:1", "--uidmap", "1:200000:10"},
			want: mapFlags{UIDMap: "0:100000:1,1:200000:10"}, wantUID: "0:100000:1,1:200000:10", wantGID: "0:100000:1,1:200000:10",
		},
		{
			name: "uidmap and gidmap", args: []string{"--uidmap", "0:100000:65536", "--gidmap", "0:300000:65536"},
			want: mapFlags{UIDMap: "0:100000:65536", GIDMap: "0:300000:65536"}, wantUID: "0:100000:65536", wantGID: "0:300000:65536",
		},
		{name: "pid", args: []string{"--pid", "42"}, want: mapFlags{PID: 42}, wantUID: "0:100000:1000", wantGID: "0:200000:1000"},
		{name: "pid unreadable", args: []string{"--pid", "7"}, want: mapFlags{PID: 7}, wantResolveErr: "read the maps of pid 7: no such process"},
		{name: "oci", args: []string{"--oci-config", oci}, want: mapFlags{OCIConfig: oci}, wantUID: "0:100000:65536", wantGID: "0:300000:100"},
		{
			name: "oci missing", args: []string{"--oci-config", missing}, want: mapFlags{OCIConfig: missing},
			wantResolveErr: "open " + missing + ": no such file or directory",
		},
		{
			name: "oci bad", args: []string{"--oci-config", badOCI}, want: mapFlags{OCIConfig: badOCI},
			wantResolveErr: "read the maps of " + badOCI + ": OCI config linux.uidMappings: ",
		},
		{name: "exclusive", args: []string{"--pid", "1", "--uidmap", "0:1:1"}, wantErr: "--uidmap, --pid and --oci-config exclude each other"},
		{name: "exclusive oci", args: []string{"--pid", "1", "--oci-config", "c.json"}, wantErr: "--uidmap, --pid and --oci-config exclude each other"},
		{name: "gidmap alone", args: []string{"--gidmap", "0:1:1"}, wantErr: "--gidmap needs --uidmap"},
		{name: "pid negative", args: []string{"--pid", "-3"}, wantErr: "--pid -3: want a positive process id"},
		{name: "pid zero", args: []string{"--pid", "0"}, wantErr: "--pid 0: want a positive process id"},
		{
			name: "uidmap syntax", args: []string{"--uidmap", "0:1"},
			wantErr: `--uidmap 0:1: userns: syntax error: extent 0 "0:1": want NS:HOST:COUNT (three numbers separated by colons)`,
		},
		{name: "gidmap syntax", args: []string{"--uidmap", "0:1:1", "--gidmap", "x"}, wantErr: "--gidmap x: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fl := pflag.NewFlagSet("test", pflag.ContinueOnError)
			m := mapFlags{readMaps: readMaps}
			m.register(fl, "u", "g", "p", "o")
			if err := fl.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err := m.validate(fl)
			if !matchErr(err, tc.wantErr) {
				t.Fatalf("validate %q: error %q, want %q", tc.args, errString(err), tc.wantErr)
			}
			if err != nil {
				if exitCodeFor(err) != ExitUsage {
					t.Errorf("validate %q: error %v is not a usage error", tc.args, err)
				}
				return
			}
			if diff := cmp.Diff(tc.want, m, cmpopts.IgnoreUnexported(mapFlags{})); diff != "" {
				t.Errorf("validate %q: flags mismatch (-want +got):\n%s", tc.args, diff)
			}
			uid, gid, err := m.resolve()
			if !matchErr(err, tc.wantResolveErr) {
				t.Fatalf("resolve %q: error %q, want %q", tc.args, errString(err), tc.wantResolveErr)
			}
			if err != nil {
				return
			}
			if uid.String() != tc.wantUID || gid.String() != tc.wantGID {
				t.Errorf("resolve %q: maps %q, %q; want %q, %q", tc.args, uid, gid, tc.wantUID, tc.wantGID)
			}
		})
	}
}

// TestMapFlagsUsage checks that register keeps the usage strings given.
func TestMapFlagsUsage(t *testing.T) {
	t.Parallel()
	fl := pflag.NewFlagSet("test", pflag.ContinueOnError)
	var m mapFlags
	m.register(fl, "uid `MAP`", "gid `MAP`", "process `PID`", "config `FILE`")
	got := map[string]string{}
	fl.VisitAll(func(f *pflag.Flag) { got[f.Name] = f.Usage })
	want := map[string]string{"uidmap": "uid `MAP`", "gidmap": "gid `MAP`", "pid": "process `PID`", "oci-config": "config `FILE`"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
}

// matchErr reports whether err's text is want, or starts with want when
// want ends in ": " (the rest comes from another package).
func matchErr(err error, want string) bool {
	if strings.HasSuffix(want, ": ") {
		return err != nil && strings.HasPrefix(err.Error(), want)
	}
	return errString(err) == want
}
