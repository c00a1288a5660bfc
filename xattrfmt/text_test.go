package xattrfmt

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNameLookup(t *testing.T) {
	t.Parallel()
	for bit := 0; bit < 64; bit++ {
		n := Name(bit)
		got, ok := Lookup(n)
		if !ok || got != bit {
			t.Errorf("Lookup(Name(%d) = %q) = %d, %v", bit, n, got, ok)
		}
	}
	for _, tc := range []struct {
		name string
		bit  int
		ok   bool
	}{
		{"cap_chown", 0, true},
		{"cap_net_raw", 13, true},
		{"CAP_NET_RAW", 13, true},
		{"cap_checkpoint_restore", 40, true},
		{"41", 41, true},
		{"63", 63, true},
		{"0x1f", 31, true},
		{"010", 8, true},
		{"0", 0, true},
		{"64", 0, false},
		{"08", 0, false},
		{"0x", 0, false},
		{"", 0, false},
		{"all", 0, false},
		{"cap_net_raw ", 0, false},
		{"cap_foo", 0, false},
		{"-1", 0, false},
		{"cap_net_raw2", 0, false},
	} {
		bit, ok := Lookup(tc.name)
		if bit != tc.bit || ok != tc.ok {
			t.Errorf("Lookup(%q) = %d, %v; want %d, %v", tc.name, bit, ok, tc.bit, tc.ok)
		}
	}
	if Name(13) != "cap_net_raw" || Name(40) != "cap_checkpoint_restore" || Name(41) != "41" || Name(-1) != "-1" {
		t.Errorf("Name: %q %q %q %q", Name(13), Name(40), Name(41), Name(-1))
	}
}

func TestCapSet(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		set  CapSet
		want string
	}{
		{0, ""},
		{1 << 13, "cap_net_raw"},
		{1<<12 | 1<<13 | 1<<41 | 1<<63, "cap_net_admin,cap_net_raw,41,63"},
	} {
		if got := tc.set.String(); got != tc.want {
			t.Errorf("CapSet(%#x).String() = %q, want %q", uint64(tc.set), got, tc.want)
		}
	}
	s := CapSet(1<<0 | 1<<63)
	for bit, want := range map[int]bool{0: true, 63: true, 1: false, 64: false, -1: false, 1000: false} {
		if s.Has(bit) != want {
			t.Errorf("Has(%d) = %v", bit, !want)
		}
	}
}

// TestCapsString checks cap_to_text on states that are not file-shaped;
// the texts are libcap 2.66 C results recorded in peers.md b.1.
func TestCapsString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"all=ep", "=ep"},
		{"=", "="},
		{"", "="},
		{"cap_net_raw,cap_net_admin=ep cap_net_admin-e", "cap_net_raw=ep cap_net_admin+p"},
		{"cap_net_raw+ep cap_net_raw-p", "cap_net_raw=e"},
		{"cap_setuid=p cap_chown=i", "cap_chown=i cap_setuid+p"},
		{"40=ep", "cap_checkpoint_restore=ep"},
		{"cap_net_raw=ep cap_sys_admin=i", "cap_sys_admin=i cap_net_raw+ep"},
		{"=ep cap_chown-e", "=ep cap_chown-e"},
		{"50+ep", "= 50+ep"},
		{"=i 41+p", "=i 41+p"},
	} {
		c, err := ParseText(tc.in)
		if err != nil {
			t.Errorf("ParseText(%q): %v", tc.in, err)
			continue
		}
		if got := c.String(); got != tc.want {
			t.Errorf("ParseText(%q).String() = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Hand-built states (expected texts from libcap 2.66 C cap_to_text):
	// every state 0-7 once, and a base of eip with lowered caps.
	for _, tc := range []struct {
		c    Caps
		want string
	}{
		{
			Caps{Effective: 0xaa, Permitted: 0xcc, Inheritable: 0xf0},
			"cap_setuid=eip cap_setgid+ip cap_kill+ei cap_fsetid+i cap_fowner+ep cap_dac_read_search+p cap_dac_override+e",
		},
		{
			Caps{Effective: 0x3fffffffffe, Permitted: 0x1fffffffffc, Inheritable: 0x1fffffffffc},
			"=eip cap_dac_override-ip cap_chown-eip 41+e",
		},
	} {
		if got := tc.c.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.c, got, tc.want)
		}
		back, err := ParseText(tc.want)
		if err != nil || back != tc.c {
			t.Errorf("ParseText(%q) = %+v, %v; want %+v", tc.want, back, err, tc.c)
		}
	}
}

func TestParseTextErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in     string
		offset int
		msg    string
	}{
		{"cap_net_raw", 11, "expected an operator (=, + or -)"},
		{"CAP_NET_RAW+EP", 12, `expected a flag (e, i or p), got 'E'`},
		{"cap_a,cap_b=eip", 0, `unknown capability "cap_a"`},
		{"cap_net_raw+ep,cap_chown+p", 14, `expected a flag (e, i or p), got ','`},
		{"cap_net_raw+ep;cap_chown+p", 14, `expected a flag (e, i or p), got ';'`},
		{"+ep", 0, `operator '+' needs a list of capabilities`},
		{"=+ep", 1, `operator "=+" needs a list of capabilities`},
		{"=e+p", 2, `operator '+' needs a list of capabilities`},
		{"cap_chown+", 10, "only '=' may be followed by no flags"},
		{"cap_chown+e-", 12, `expected a flag (e, i or p) after '-'`},
		{"cap_chown,=e", 10, "expected a capability name after ','"},
		{"64=p", 0, `unknown capability "64"`},
		{"cap_chown!p", 9, `expected an operator (=, + or -), got '!'`},
		{"cap_chown=p\x00", 11, "NUL byte"},
	} {
		c, err := ParseText(tc.in)
		var se *SyntaxError
		if !errors.As(err, &se) || !errors.Is(err, ErrSyntax) {
			t.Errorf("ParseText(%q) = %+v, %v; want a *SyntaxError", tc.in, c, err)
			continue
		}
		if c != (Caps{}) || se.Offset != tc.offset || se.Msg != tc.msg || se.Text != tc.in {
			t.Errorf("ParseText(%q) = %+v at offset %d; want %q at offset %d", tc.in, se.Msg, se.Offset, tc.msg, tc.offset)
		}
		if !strings.HasPrefix(err.Error(), "xattrfmt: bad capability text ") {
			t.Errorf("error %q lacks the prefix", err)
		}
	}
}

func TestCapsFileCaps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want FileCaps
		err  error
	}{
		{"cap_net_raw+ep", FileCaps{Revision: Revision2, Effective: true, Permitted: 1 << bitNetRaw}, nil},
		{"cap_net_raw+p", FileCaps{Revision: Revision2, Permitted: 1 << bitNetRaw}, nil},
		{"cap_net_raw=e", FileCaps{Revision: Revision2, Effective: true}, nil}, // as setcap writes it
		{"=e 63+e", FileCaps{Revision: Revision2, Effective: true}, nil},
		{"cap_chown=ei cap_kill=ep 50+ep", FileCaps{Revision: Revision2, Effective: true, Permitted: 1<<5 | 1<<50, Inheritable: 1}, nil},
		{"", FileCaps{Revision: Revision2}, nil},
		{"cap_net_raw=ep cap_sys_admin=i", FileCaps{}, ErrEffective},
		{"=ep cap_chown-e", FileCaps{}, ErrEffective},
		{"cap_chown=p cap_chown+e-p cap_kill=i", FileCaps{}, ErrEffective},
		{"bogus", FileCaps{}, ErrSyntax},
	} {
		got, err := ParseFileText(tc.in)
		if !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
			t.Errorf("ParseFileText(%q) error = %v, want %v", tc.in, err, tc.err)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("ParseFileText(%q) mismatch (-want +got):\n%s", tc.in, diff)
		}
	}
}
