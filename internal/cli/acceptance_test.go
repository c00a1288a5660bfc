package cli

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/xattrfmt"
)

// capCase is one generated capability text with an optional rootid.
type capCase struct {
	text   string
	rootid int64 // noRootID for revision 2
}

// genCapCases returns n reproducible capability texts: random mixes of p, i
// and e per capability (valid file caps, and some with a partial effective
// set that setcap and nscap must both refuse), "all", numeric names (also
// of bits above the last known capability), and rootids including ids of
// 2^31 and above.
func genCapCases(n int) []capCase {
	r := rand.New(rand.NewPCG(2026, 11))
	name := func(bit int) string {
		switch {
		case bit > xattrfmt.LastCap:
			return strconv.Itoa(bit) // only numbers name these
		case r.IntN(5) == 0:
			return strconv.Itoa(bit)
		case r.IntN(5) == 0:
			return fmt.Sprintf("0x%x", bit)
		}
		return xattrfmt.Name(bit)
	}
	var cases []capCase
	for i := range n {
		var clauses []string
		eff := r.IntN(2) == 0
		partialEff := i%10 == 9 // every tenth: invalid for a file
		if r.IntN(8) == 0 {
			flags := []string{"p", "i", "ip"}[r.IntN(3)]
			if eff {
				flags += "e"
			}
			clauses = append(clauses, "all="+flags)
		}
		for k := 1 + r.IntN(4); k > 0; k-- {
			bit := r.IntN(xattrfmt.LastCap + 1)
			if r.IntN(10) == 0 {
				bit = xattrfmt.LastCap + 1 + r.IntN(63-xattrfmt.LastCap)
			}
			flags := []string{"p", "i", "ip", "pi"}[r.IntN(4)]
			if eff {
				flags += "e"
			}
			op := "="
			if r.IntN(3) == 0 {
				op = "+"
			}
			clauses = append(clauses, name(bit)+op+flags)
		}
		if partialEff {
			// One capability permitted but not effective next to an
			// effective one: setcap refuses it (not a file state).
			clauses = append(clauses, "cap_chown=pe", "cap_kill=p")
		}
		c := capCase{text: strings.Join(clauses, " "), rootid: noRootID}
		switch r.IntN(6) {
		case 0, 1:
		case 2:
			c.rootid = 1 + r.Int64N(65535)
		case 3:
			c.rootid = 100000 + r.Int64N(1<<20)
		case 4:
			c.rootid = 1<<31 + r.Int64N(1<<31-1) // 2^31 .. 2^32-2
		case 5:
			c.rootid = 1 + r.Int64N(1<<31-1)
		}
		cases = append(cases, c)
	}
	return cases
}

var negRootID = regexp.MustCompile(`\[rootid=(-[0-9]+)\]`)

// unsignedRootID rewrites getcap's negative rootids (ids of 2^31 and above
// printed as int32) as the unsigned ids they are.
func unsignedRootID(line string) string {
	return negRootID.ReplaceAllStringFunc(line, func(m string) string {
		n, err := strconv.ParseInt(negRootID.FindStringSubmatch(m)[1], 10, 32)
		if err != nil {
			return m
		}
		return fmt.Sprintf("[rootid=%d]", uint32(int32(n)))
	})
}

func TestUnsignedRootID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"f cap_chown=p [rootid=-1294967296]": "f cap_chown=p [rootid=3000000000]",
		"f cap_chown=p [rootid=-2147483648]": "f cap_chown=p [rootid=2147483648]",
		"f cap_chown=p [rootid=100000]":      "f cap_chown=p [rootid=100000]",
		"f cap_chown=p":                      "f cap_chown=p",
	} {
		if got := unsignedRootID(in); got != want {
			t.Errorf("unsignedRootID(%q) = %q, want %q", in, got, want)
		}
	}
}

// ACCEPTANCE: for generated capability sets, the bytes nscap set writes
// equal the bytes setcap writes for the same text (setcap -n R is nscap
// set --rootid R), and nscap get -n prints the line getcap -n prints.
func TestAcceptanceSetcapGetcap(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "setcap", "getcap")
	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)

	cases := genCapCases(240)
	var nvalid, nv3, nbig, nrefused int
	for i, tc := range cases {
		a := writeFile(t, filepath.Join(dir, fmt.Sprintf("setcap-%03d", i)))
		b := writeFile(t, filepath.Join(dir, fmt.Sprintf("nscap-%03d", i)))

		setcapArgs := []string{tc.text, a}
		nscapArgs := []string{"set", tc.text, b}
		if tc.rootid != noRootID {
			setcapArgs = append([]string{"-n", strconv.FormatInt(tc.rootid, 10)}, setcapArgs...)
			nscapArgs = []string{"set", "--rootid", strconv.FormatInt(tc.rootid, 10), tc.text, b}
		}
		out, setcapErr := exec.Command("setcap", setcapArgs...).CombinedOutput()
		r := nscap(t, "", nscapArgs...)

		if setcapErr != nil {
			nrefused++
			if r.Code == ExitOK {
				t.Errorf("case %d: setcap %q refused (%s) but nscap %q succeeded", i, setcapArgs, out, nscapArgs)
			}
			if got := rawHex(t, b); got != "" {
				t.Errorf("case %d: nscap %q failed but wrote %s", i, nscapArgs, got)
			}
			continue
		}
		if r.Code != ExitOK {
			t.Errorf("case %d: nscap %q: exit %d: %s (setcap accepted it)", i, nscapArgs, r.Code, r.Stderr)
			continue
		}
		nvalid++
		if tc.rootid != noRootID {
			nv3++
			if tc.rootid >= 1<<31 {
				nbig++
			}
		}
		if want, got := rawHex(t, a), rawHex(t, b); got != want {
			t.Errorf("case %d %q rootid %d: nscap wrote %s, setcap wrote %s", i, tc.text, tc.rootid, got, want)
		}
		for _, f := range []string{a, b} {
			want := unsignedRootID(runTool(t, "getcap", "-n", f))
			g := nscap(t, "", "get", "-n", f)
			if g.Code != ExitOK || g.Stdout != want {
				t.Errorf("case %d %q: nscap get -n = %q (exit %d, %s), getcap -n = %q", i, tc.text, g.Stdout, g.Code, g.Stderr, want)
			}
			want = runTool(t, "getcap", f)
			if g := nscap(t, "", "get", f); g.Stdout != want {
				t.Errorf("case %d %q: nscap get = %q, getcap = %q", i, tc.text, g.Stdout, want)
			}
		}
	}
	t.Logf("%d valid (%d revision 3, %d with rootid >= 2^31), %d refused by both", nvalid, nv3, nbig, nrefused)
	if nvalid < 200 || nv3 < 50 || nbig < 10 || nrefused == 0 {
		t.Errorf("coverage too small: %d valid, %d v3, %d big rootids, %d refused", nvalid, nv3, nbig, nrefused)
	}
}
