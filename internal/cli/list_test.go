package cli

import "testing"

func TestModeString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		typ  string
		mode uint32
		want string
	}{
		{"file", 0o644, "-rw-r--r--"},
		{"file", 0o4755, "-rwsr-xr-x"},
		{"file", 0o4644, "-rwSr--r--"},
		{"dir", 0o3775, "drwxrwsr-t"},
		{"dir", 0o1770, "drwxrwx--T"},
		{"symlink", 0o777, "lrwxrwxrwx"},
		{"hardlink", 0o600, "hrw-------"},
		{"char", 0o620, "crw--w----"},
		{"block", 0o660, "brw-rw----"},
		{"fifo", 0o600, "prw-------"},
	} {
		if got := modeString(tc.typ, tc.mode); got != tc.want {
			t.Errorf("modeString(%s, %#o) = %q, want %q", tc.typ, tc.mode, got, tc.want)
		}
	}
}

func TestNewListCmd(t *testing.T) {
	t.Parallel()
	for argv, wantErr := range map[string]string{
		"a.tar":                        "",
		"--uidmap 0:200000:65536 -":    "",
		"":                             "missing ARCHIVE",
		"a b":                          `too many arguments: ["b"]`,
		"--foreign-caps keep a":        `--foreign-caps: foreign caps policy "keep": want fail, skip or host`,
		"--gidmap 0:1:1 a":             "--gidmap needs --uidmap",
		"--uidmap 0:1:1 --pid 3 a.tar": "--uidmap, --pid and --oci-config exclude each other",
	} {
		_, err := parseCmd(t, newListCmd, argv)
		if errString(err) != wantErr {
			t.Errorf("list %s: error %q, want %q", argv, errString(err), wantErr)
		}
		if err != nil && exitCodeFor(err) != ExitUsage {
			t.Errorf("list %s: error %v is not a usage error", argv, err)
		}
	}
}
