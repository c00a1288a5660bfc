package cli

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"

	"github.com/nscap/nscap/backup"
	"github.com/nscap/nscap/internal/testutil"
)

func TestNewBackupCmd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		argv    string
		want    backupOptions
		wantErr string
	}{
		{argv: "-o a.tar r", want: backupOptions{Root: "r", Output: "a.tar"}},
		{argv: "-o a.tar.zst r", want: backupOptions{Root: "r", Output: "a.tar.zst", Compression: backup.CompressZstd}},
		{argv: "-o a.tgz --compress none r", want: backupOptions{Root: "r", Output: "a.tgz"}},
		{argv: "-o - --compress gzip r", want: backupOptions{Root: "r", Output: "-", Compression: backup.CompressGzip}},
		{argv: "--uidmap 0:100000:1 --uidmap 1:200000:10 -o a r", want: backupOptions{Root: "r", Output: "a", Maps: mapFlags{UIDMap: "0:100000:1,1:200000:10"}}},
		{argv: "--uidmap 0:100000:65536 --gidmap 0:300000:65536 -o a r", want: backupOptions{Root: "r", Output: "a", Maps: mapFlags{UIDMap: "0:100000:65536", GIDMap: "0:300000:65536"}}},
		{argv: "--pid 42 --foreign-caps skip -o a r", want: backupOptions{Root: "r", Output: "a", Maps: mapFlags{PID: 42}, ForeignCaps: backup.ForeignCapsSkip}},
		{argv: "--oci-config c.json --foreign-caps host --workers 3 -o a r", want: backupOptions{Root: "r", Output: "a", Maps: mapFlags{OCIConfig: "c.json"}, ForeignCaps: backup.ForeignCapsHost, Workers: 3}},
		{argv: "--json -o a r", want: backupOptions{Root: "r", Output: "a", JSON: true}},
		{argv: "r", wantErr: "missing -o FILE (or -o - for stdout)"},
		{argv: "--workers -1 -o a r", wantErr: "--workers -1: want 0 (automatic) or a positive number"},
		{argv: "--exclude *.log --exclude etc/shadow --one-file-system -o a r", want: backupOptions{Root: "r", Output: "a", Exclude: []string{"*.log", "etc/shadow"}, OneFileSystem: true}},
		{argv: "--xdev -o a r", want: backupOptions{Root: "r", Output: "a", OneFileSystem: true}},
		{argv: "-o a r --exclude", wantErr: "flag needs an argument: --exclude"},
		{argv: "--helper always -o a r", wantErr: "--helper always needs the maps of the rootfs (--uidmap, --pid or --oci-config)"},
		{argv: "--helper maybe -o a r", wantErr: `invalid argument "maybe" for "--helper" flag: want auto, always or never`},
		{argv: "-o a", wantErr: "missing ROOTFS"},
		{argv: "-o a r s", wantErr: `too many arguments: ["s"]`},
		{argv: "--pid 1 --uidmap 0:1:1 -o a r", wantErr: "--uidmap, --pid and --oci-config exclude each other"},
		{argv: "--gidmap 0:1:1 -o a r", wantErr: "--gidmap needs --uidmap"},
		{argv: "--pid -3 -o a r", wantErr: "--pid -3: want a positive process id"},
		{argv: "--uidmap 0:1 -o a r", wantErr: `--uidmap 0:1: userns: syntax error: extent 0 "0:1": want NS:HOST:COUNT (three numbers separated by colons)`},
		{argv: "--foreign-caps keep -o a r", wantErr: `--foreign-caps: foreign caps policy "keep": want fail, skip or host`},
		{argv: "--compress bz2 -o a r", wantErr: `--compress: compression "bz2": want none, gzip, zstd or xz`},
		{argv: "-o a.tar.xz r", want: backupOptions{Root: "r", Output: "a.tar.xz", Compression: backup.CompressXz}},
		{argv: "-o a.txz --compress-level 9 r", want: backupOptions{Root: "r", Output: "a.txz", Compression: backup.CompressXz, CompressLevel: 9}},
		{argv: "-o a.tar.zst --compress-level 19 r", want: backupOptions{Root: "r", Output: "a.tar.zst", Compression: backup.CompressZstd, CompressLevel: 19}},
		{argv: "-o a.bak --compress none r", want: backupOptions{Root: "r", Output: "a.bak"}},
		{argv: "-o dir.d/a r", want: backupOptions{Root: "r", Output: "dir.d/a"}},
		{argv: "-o a.tar.bz2 r", wantErr: "-o a.tar.bz2: unknown suffix .bz2 (nscap writes none of bzip2, lz4, lzma, lzop, compress); name it .tar, .tar.gz (.tgz), .tar.zst (.tzst) or .tar.xz (.txz), or give --compress to choose"},
		{argv: "-o a.bak r", wantErr: "-o a.bak: unknown suffix .bak (nscap writes none of bzip2, lz4, lzma, lzop, compress); name it .tar, .tar.gz (.tgz), .tar.zst (.tzst) or .tar.xz (.txz), or give --compress to choose"},
		{argv: "-o a.tar.gz --compress-level 10 r", wantErr: "--compress-level 10: gzip levels are 1 to 9"},
		{argv: "-o a.tar.xz --compress-level 0 r", wantErr: "--compress-level 0: xz levels are 1 to 9"},
		{argv: "-o a.tar --compress-level 3 r", wantErr: "--compress-level needs compression: name -o FILE .tar.gz, .tar.zst or .tar.xz, or give --compress"},
		{argv: "--json -o - r", wantErr: "--json writes on stdout: it needs -o FILE"},
	}
	for _, tc := range tests {
		t.Run(tc.argv, func(t *testing.T) {
			t.Parallel()
			got, err := parseCmd(t, newBackupCmd, tc.argv)
			if errString(err) != tc.wantErr {
				t.Fatalf("backup %s: error %q, want %q", tc.argv, errString(err), tc.wantErr)
			}
			if err != nil {
				if exitCodeFor(err) != ExitUsage {
					t.Errorf("backup %s: error %v is not a usage error", tc.argv, err)
				}
				return
			}
			if diff := cmp.Diff(tc.want, *got, cmpopts.IgnoreFields(backupOptions{}, "IO", "Version", "Helper"), cmpopts.IgnoreUnexported(mapFlags{})); diff != "" {
				t.Errorf("backup %s: options mismatch (-want +got):\n%s", tc.argv, diff)
			}
		})
	}
}

// backupTree makes a small rootfs of a container mapped at 0:100000:65536
// with a container-root cap, and, when foreign, a host-scoped cap.
func backupTree(t *testing.T, foreign bool) string {
	t.Helper()
	testutil.RequireRoot(t)
	root := filepath.Join(testutil.TempDir(t), "rootfs")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.RequireXattrFS(t, root)
	files := map[string][]byte{"bin/ping": {1, 0, 0, 3, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa0, 0x86, 0x01, 0}}
	if foreign {
		files["bin/hostcap"] = []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	}
	for _, p := range []string{".", "bin"} {
		if err := os.Chown(filepath.Join(root, p), 100000, 100000); err != nil {
			t.Fatal(err)
		}
	}
	for rel, caps := range files {
		p := filepath.Join(root, rel)
		if err := os.WriteFile(p, []byte(rel), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 100000, 100000); err != nil {
			t.Fatal(err)
		}
		if err := unix.Setxattr(p, "security.capability", caps, 0); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestRunBackup(t *testing.T) {
	root := backupTree(t, true)
	dir := filepath.Dir(root)
	out := filepath.Join(dir, "ct.tar")

	// Default policy: the host-scoped cap fails the backup, naming it.
	r := nscap(t, "", "backup", "--uidmap", "0:100000:65536", "-o", out, root)
	if r.Code != ExitError {
		t.Errorf("exit %d, want %d; stderr %s", r.Code, ExitError, r.Stderr)
	}
	for _, want := range []string{
		"nscap: backup " + filepath.Join(root, "bin/hostcap") + ": host rootid 0 outside the map 0:100000:65536\n",
		"nscap: backup " + root + ": 1 item(s) could not be archived faithfully; " + out + " was not written\n",
	} {
		if !strings.Contains(r.Stderr, want) {
			t.Errorf("stderr %q lacks %q", r.Stderr, want)
		}
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("output file after a failed backup: %v", err)
	}

	// skip: a warning, an archive, a summary.
	r = nscap(t, "", "backup", "--uidmap", "0:100000:65536", "--foreign-caps", "skip", "-o", out, root)
	if r.Code != ExitOK || r.Stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", r.Code, r.Stdout, r.Stderr)
	}
	if !strings.Contains(r.Stderr, "nscap: warning: backup "+filepath.Join(root, "bin/hostcap")+": security.capability dropped (--foreign-caps skip)") ||
		!strings.Contains(r.Stderr, "backup: 4 entries (2 files, 2 dirs") || !strings.Contains(r.Stderr, "1 caps, 1 skipped") {
		t.Errorf("stderr:\n%s", r.Stderr)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	caps := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeXGlobalHeader {
			if !strings.HasPrefix(h.PAXRecords["comment"], "nscap-backup/1 tool=nscap/") {
				t.Errorf("global comment %q", h.PAXRecords["comment"])
			}
			continue
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s owned by %d:%d, want 0:0", h.Name, h.Uid, h.Gid)
		}
		caps[h.Name] = h.PAXRecords["SCHILY.xattr.security.capability"]
	}
	want := map[string]string{"./": "", "./bin/": "", "./bin/hostcap": "", "./bin/ping": "\x01\x00\x00\x02\x00\x20" + strings.Repeat("\x00", 14)}
	if diff := cmp.Diff(want, caps); diff != "" {
		t.Errorf("caps (-want +got):\n%s", diff)
	}

	// -o - streams to stdout; --json reports on stdout.
	root2 := backupTree(t, false)
	r = nscap(t, "", "backup", "-q", "--uidmap", "0:100000:65536", "-o", "-", root2)
	if r.Code != ExitOK || r.Stderr != "" || !bytes.Contains([]byte(r.Stdout), []byte("nscap-backup/1")) {
		t.Errorf("-o -: exit %d, stderr %q, %d bytes on stdout", r.Code, r.Stderr, len(r.Stdout))
	}
	r = nscap(t, "", "backup", "--json", "--uidmap", "0:100000:65536", "-o", filepath.Join(dir, "x.tar.zst"), root2)
	if r.Code != ExitOK || !strings.Contains(r.Stdout, `{"type":"summary","command":"backup","archive":"`+filepath.Join(dir, "x.tar.zst")+`","dest":"`+root2+`","dry_run":false,"entries":3,"files":1,"dirs":2,`) {
		t.Errorf("--json: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}
