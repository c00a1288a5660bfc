package xattrfmt

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/internal/testutil"
)

// TestSetcapOracle writes random capability text with the real setcap,
// reads it back with the real getcap and getxattr, and checks that our
// parser, encoder and printer agree with libcap byte for byte, including
// on the texts setcap refuses.
func TestSetcapOracle(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "setcap", "getcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}

	r := rand.New(rand.NewPCG(2, 66))
	texts := []string{
		"", "=", "cap_net_raw+ep", "cap_net_raw=e", "all=ep", "=e 63+e",
		"cap_net_raw=ep cap_sys_admin=i", "=ep 50+i", "=ep cap_chown-e", "CAP_NET_RAW+ep",
		"cap_net_raw", "CAP_NET_RAW+EP", "cap_a,cap_b=eip", "cap_chown=i cap_setuid+p", "41,63=p",
	}
	for i := range 400 {
		texts = append(texts, textGen{r: r, fileShaped: i%4 != 0}.text())
	}
	var written, refusedSyntax, refusedEffective int
	for _, text := range texts {
		fc, perr := ParseFileText(text)
		out, err := exec.Command("setcap", text, file).CombinedOutput()
		if err != nil {
			switch {
			case strings.Contains(string(out), "fatal error"):
				refusedSyntax++
				if !errors.Is(perr, ErrSyntax) {
					t.Errorf("setcap refuses %q as bad text; ParseFileText = %+v, %v", text, fc, perr)
				}
			case strings.Contains(string(out), "Invalid file"):
				refusedEffective++
				if !errors.Is(perr, ErrEffective) {
					t.Errorf("setcap refuses %q as invalid file caps; ParseFileText = %+v, %v", text, fc, perr)
				}
			default:
				t.Fatalf("setcap %q: %v\n%s", text, err, out)
			}
			continue
		}
		written++
		if perr != nil {
			t.Errorf("setcap accepts %q; ParseFileText: %v", text, perr)
			continue
		}
		raw := getxattr(t, file)
		enc, err := Encode(fc)
		if err != nil || !cmp.Equal(enc, raw) {
			t.Errorf("text %q: Encode(ParseFileText) = %x, %v; setcap wrote %x", text, enc, err, raw)
		}
		dec, err := Decode(raw)
		if err != nil || dec != fc {
			t.Errorf("text %q: Decode(%x) = %+v, %v; want %+v", text, raw, dec, err, fc)
		}
		gout, err := exec.Command("getcap", file).Output()
		if err != nil {
			t.Fatalf("getcap: %v", err)
		}
		want, ok := strings.CutPrefix(strings.TrimSuffix(string(gout), "\n"), file+" ")
		if !ok {
			t.Fatalf("getcap printed %q", gout)
		}
		if got := dec.String(); got != want {
			t.Errorf("text %q: FileCaps.String() = %q, getcap prints %q", text, got, want)
		}
		// The text form has no word for "effective bit, empty sets"
		// (setcap cap_net_raw=e writes it; getcap prints "="), so the
		// round trip is of the state libcap loads.
		back, err := ParseText(want)
		if err != nil || back != dec.Caps() {
			t.Errorf("ParseText(%q) (getcap output) = %+v, %v; want %+v", want, back, err, dec.Caps())
		}
	}
	t.Logf("%d texts: %d written, %d refused as syntax, %d refused by the effective rule", len(texts), written, refusedSyntax, refusedEffective)
	if written < 200 || refusedSyntax < 10 || refusedEffective < 10 {
		t.Errorf("generator coverage too low: %d written, %d syntax, %d effective", written, refusedSyntax, refusedEffective)
	}
}

func getxattr(tb testing.TB, path string) []byte {
	tb.Helper()
	buf := make([]byte, 64)
	n, err := syscall.Getxattr(path, "security.capability", buf)
	if err != nil {
		tb.Fatalf("getxattr %s: %v", path, err)
	}
	return buf[:n]
}

// TestSetcapOracleV3 checks revision-3 values written by setcap -n.
func TestSetcapOracleV3(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "setcap", "getcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text   string
		rootid uint32
	}{{"cap_net_raw+ep", 100000}, {"cap_setuid,50=eip", 1}, {"cap_chown=i cap_kill+p", 0xfffffffe}} {
		if out, err := exec.Command("setcap", "-n", strconv.FormatUint(uint64(tc.rootid), 10), tc.text, file).CombinedOutput(); err != nil {
			t.Fatalf("setcap -n %d %q: %v\n%s", tc.rootid, tc.text, err, out)
		}
		fc, err := ParseFileText(tc.text)
		if err != nil {
			t.Fatal(err)
		}
		fc.Revision, fc.RootID = Revision3, tc.rootid
		raw := getxattr(t, file)
		if enc, err := Encode(fc); err != nil || !cmp.Equal(enc, raw) {
			t.Errorf("Encode(%+v) = %x, %v; setcap -n wrote %x", fc, enc, err, raw)
		}
		gout, err := exec.Command("getcap", "-n", file).Output()
		if err != nil {
			t.Fatal(err)
		}
		// getcap prints the rootid with %d of a uid_t: signed.
		want := fmt.Sprintf("%s %s [rootid=%d]\n", file, fc, int32(tc.rootid))
		if string(gout) != want {
			t.Errorf("getcap -n printed %q, want %q", gout, want)
		}
	}
}
