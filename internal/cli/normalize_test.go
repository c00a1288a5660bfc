package cli

import (
	"strings"
	"testing"
)

func TestNewNormalizeCmd(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		argv, err string
	}{
		{"-o x.tar in.tar", "missing --uidmap, --pid or --oci-config"},
		{"--uidmap 0:100000:65536 in.tar", "missing -o FILE"},
		{"--uidmap 0:100000:65536 --pid 1 -o x in.tar", "--uidmap"},
		{"--uidmap 0:100000:65536 -o x --compress lz in.tar", "--compress"},
		{"--uidmap 0:100000:65536 -o x", "ARCHIVE"},
	} {
		if _, err := parseCmd(t, newNormalizeCmd, tc.argv); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("normalize %s: error %v, want one naming %q", tc.argv, err, tc.err)
		}
	}
	got, err := parseCmd(t, newNormalizeCmd, "--uidmap 0:100000:65536 --owners -o out.tar.zst in.tar")
	if err != nil {
		t.Fatal(err)
	}
	if got.Input != "in.tar" || got.Output != "out.tar.zst" || !got.Owners || got.Compression.String() != "zstd" {
		t.Errorf("options %+v", got)
	}
}
