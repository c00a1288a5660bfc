package cli

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nscap/nscap/fcaps"
)

func TestNewRemoveCmd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		argv    string
		want    removeOptions
		wantErr string
	}{
		{argv: "a", want: removeOptions{Paths: []string{"a"}}},
		{argv: "a b --json", want: removeOptions{Paths: []string{"a", "b"}, JSON: true}},
		{argv: "", wantErr: "missing PATH"},
		{argv: "-r a", wantErr: "unknown shorthand flag: 'r' in -r"},
		{argv: "--helper always a", want: removeOptions{Paths: []string{"a"}, Helper: fcaps.HelperAlways}},
		{argv: "--helper x a", wantErr: `invalid argument "x" for "--helper" flag: want auto, always or never`},
		{argv: "--pid 42 a", want: removeOptions{Paths: []string{"a"}, Maps: mapFlags{PID: 42}}},
		{argv: "--uidmap 0:100000:10 --uidmap 10:5:1 a", want: removeOptions{Paths: []string{"a"}, Maps: mapFlags{UIDMap: "0:100000:10,10:5:1"}}},
		{argv: "--oci-config c.json a", want: removeOptions{Paths: []string{"a"}, Maps: mapFlags{OCIConfig: "c.json"}}},
		{argv: "--pid 42 --uidmap 0:1:1 a", wantErr: "--uidmap, --pid and --oci-config exclude each other"},
		{argv: "--pid 0 a", wantErr: "--pid 0: want a positive process id"},
		{argv: "--uidmap 0:100000:10 --gidmap 0:200000:10 a", want: removeOptions{Paths: []string{"a"}, Maps: mapFlags{UIDMap: "0:100000:10", GIDMap: "0:200000:10"}}},
		{argv: "--gidmap 0:1:1 a", wantErr: "--gidmap needs --uidmap"},
		{argv: "--root rootfs --pid 42 rootfs/a", want: removeOptions{Paths: []string{"rootfs/a"}, Maps: mapFlags{PID: 42}, Root: "rootfs"}},
		{argv: "--root= a", wantErr: "--root: empty directory name"},
		{argv: "--uidmap 0:1 a", wantErr: `--uidmap 0:1: userns: syntax error: extent 0 "0:1": want NS:HOST:COUNT (three numbers separated by colons)`},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			t.Parallel()
			got, err := parseCmd(t, newRemoveCmd, tc.argv)
			if errString(err) != tc.wantErr {
				t.Fatalf("remove %s: error %q, want %q", tc.argv, errString(err), tc.wantErr)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, *got, cmpopts.IgnoreFields(removeOptions{}, "IO"), cmpopts.IgnoreUnexported(removeOptions{}, mapFlags{})); diff != "" {
				t.Errorf("remove %s: options mismatch (-want +got):\n%s", tc.argv, diff)
			}
		})
	}
}

func TestRunRemove(t *testing.T) {
	fx := newFixture(t)
	r := nscap(t, "", "remove", fx.path("d/v2"), fx.path("d/none"), fx.path("d/v3"), fx.path("d/link"))
	r.Stderr = fx.relative(r.Stderr)
	want := result{
		Code: ExitError,
		Stderr: "nscap: remove $DIR/d/none: no capabilities to remove (no data available)\n" +
			"nscap: remove $DIR/d/link: not a regular file: it is a symbolic link (capabilities act only on regular files)\n",
	}
	if diff := cmp.Diff(want, r); diff != "" {
		t.Errorf("nscap remove mismatch (-want +got):\n%s", diff)
	}
	for _, p := range []string{"d/v2", "d/v3"} {
		if got := rawHex(t, fx.path(p)); got != "" {
			t.Errorf("%s still has caps %s", p, got)
		}
	}
}
