package fcaps_test

import (
	"debug/elf"
	"strings"
	"testing"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/testutil"
)

// TestParseBinfmtEntry parses entries as the kernel shows them (the first
// from qemu-user-static's aarch64 registration) and matches headers.
func TestParseBinfmtEntry(t *testing.T) {
	t.Parallel()
	qemu := "enabled\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: POCF\noffset 0\n" +
		"magic 7f454c460201010000000000000000000200b700\nmask ffffffffffffff00fffffffffffffffffeffffff\n"
	e, err := fcaps.ParseBinfmtEntry("qemu-aarch64", strings.NewReader(qemu))
	if err != nil {
		t.Fatal(err)
	}
	if !e.Enabled || e.Flags != "POCF" || !e.Credentials() || e.Interpreter != "/usr/libexec/qemu-binfmt/aarch64-binfmt-P" {
		t.Errorf("parsed %+v", e)
	}
	arm := testutil.ELFHeader(uint16(elf.EM_AARCH64))
	dyn := append([]byte(nil), arm...)
	dyn[16] = 3 // ET_DYN: the mask's 0xfe lets it match
	for _, tc := range []struct {
		head []byte
		want bool
	}{
		{arm, true},
		{dyn, true},
		{testutil.ELFHeader(uint16(elf.EM_RISCV)), false},
		{arm[:10], false},
	} {
		if got := e.Matches("x", tc.head); got != tc.want {
			t.Errorf("Matches(%x) = %v, want %v", tc.head, got, tc.want)
		}
	}
	if m, ok := fcaps.ELFMachine(arm); !ok || m != elf.EM_AARCH64 {
		t.Errorf("ELFMachine = %v, %v", m, ok)
	}

	ext, err := fcaps.ParseBinfmtEntry("wine", strings.NewReader("disabled\ninterpreter /usr/bin/wine\nflags: \nextension .exe\n"))
	if err != nil {
		t.Fatal(err)
	}
	if ext.Matches("a.exe", nil) {
		t.Error("a disabled entry matches")
	}
	ext.Enabled = true
	if !ext.Matches("dir/a.exe", nil) || ext.Matches("a.exec", nil) || ext.Credentials() {
		t.Errorf("extension entry %+v", ext)
	}
	if _, err := fcaps.ParseBinfmtEntry("bad", strings.NewReader("enabled\nmagic zz\n")); err == nil {
		t.Error("bad magic: no error")
	}
}

// FuzzParseBinfmtEntry: parsing any text and matching any header never
// panics, and a parsed entry matches only enabled.
func FuzzParseBinfmtEntry(f *testing.F) {
	f.Add("enabled\ninterpreter /x\nflags: OC\noffset 0\nmagic 7f454c46\nmask ffffffff\n", []byte("\x7fELF\x02\x01"))
	f.Add("enabled\ninterpreter /x\nflags: \noffset 9223372036854775807\nmagic 7f\n", []byte("\x7f"))
	f.Add("disabled\ninterpreter /w\nextension .exe\n", []byte{})
	f.Fuzz(func(t *testing.T, text string, head []byte) {
		e, err := fcaps.ParseBinfmtEntry("fuzz", strings.NewReader(text))
		if err != nil {
			return
		}
		if e.Matches("a.exe", head) && !e.Enabled {
			t.Errorf("disabled entry %+v matches", e)
		}
		_, _ = fcaps.ELFMachine(head)
	})
}
