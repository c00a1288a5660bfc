package fcaps_test

import (
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/internal/testutil"
)

func hostMachine(t *testing.T) elf.Machine {
	t.Helper()
	f, err := os.Open("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	head := make([]byte, 64)
	if _, err := f.Read(head); err != nil {
		t.Fatal(err)
	}
	m, ok := fcaps.ELFMachine(head)
	if !ok {
		t.Fatal("/proc/self/exe: no ELF header")
	}
	return m
}

// TestAuditBinfmt: a test user namespace mounts its own binfmt_misc
// instance (Linux 6.7) with two entries for machines other than the
// host's: one with the C flag and a world-writable interpreter, one
// without C whose interpreter carries caps. Capped files with ELF headers
// of those machines (a few bytes, no emulator), one of a third machine
// with no entry, and one of the host's are audited against that
// instance (ReadBinfmt(pid)).
func TestAuditBinfmt(t *testing.T) {
	testutil.RequireRoot(t)
	host := hostMachine(t)
	var foreign []elf.Machine
	for _, m := range []elf.Machine{elf.EM_AARCH64, elf.EM_RISCV, elf.EM_PPC64, elf.EM_X86_64, elf.EM_S390, elf.EM_LOONGARCH} {
		if m != host && m != elf.EM_386 && len(foreign) < 3 {
			foreign = append(foreign, m)
		}
	}
	withC, withoutC, none := foreign[0], foreign[1], foreign[2]

	dir := testutil.TempDir(t)
	testutil.RequireXattrFS(t, dir)
	interpC := filepath.Join(dir, "interp-c")
	interpNoC := filepath.Join(dir, "interp-noc")
	testutil.NoErr(t, os.WriteFile(interpC, []byte("#!/bin/sh\n"), 0o755))
	testutil.NoErr(t, os.Chmod(interpC, 0o777)) // writable by anyone
	testutil.NoErr(t, os.WriteFile(interpNoC, []byte("#!/bin/sh\n"), 0o755))
	testutil.NoErr(t, syscall.Setxattr(interpNoC, fcaps.AttrName, corpusValue(t, "cap_sys_admin+ep"), 0))

	reg := func(name string, m elf.Machine, interp, flags string) string {
		magic, mask := testutil.BinfmtMagic(uint16(m))
		return fmt.Sprintf(":%s:M::%s:%s:%s:%s", name, magic, mask, interp, flags)
	}
	pid := testutil.BinfmtNS(t, 3400000, []string{
		reg("nscap-test-c", withC, interpC, "C"),
		reg("nscap-test-noc", withoutC, interpNoC, ""),
	})

	tree := filepath.Join(dir, "tree")
	testutil.NoErr(t, os.Mkdir(tree, 0o755))
	files := map[string]elf.Machine{"withc": withC, "withoutc": withoutC, "none": none, "native": host}
	for name, m := range files {
		p := filepath.Join(tree, name)
		testutil.NoErr(t, os.WriteFile(p, testutil.ELFHeader(uint16(m)), 0o755))
		testutil.NoErr(t, syscall.Setxattr(p, fcaps.AttrName, corpusValue(t, "cap_net_raw+ep"), 0))
	}

	b, err := fcaps.ReadBinfmt(pid)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("/proc/%d/root/proc/sys/fs/binfmt_misc", pid); b.Dir != want || !b.Mounted || !b.Enabled || len(b.Entries) != 2 {
		t.Fatalf("ReadBinfmt(%d) = dir %s mounted %v enabled %v, %d entries; want %s with the 2 test entries", pid, b.Dir, b.Mounted, b.Enabled, len(b.Entries), want)
	}
	got := map[string][]string{}
	for _, f := range auditTree(t, tree, fcaps.AuditOptions{Binfmt: b}) {
		if f.Rule.ID == fcaps.RuleCapabilities {
			continue
		}
		got[f.Rel] = append(got[f.Rel], f.Rule.ID+" "+f.Severity().String())
		if f.Binfmt == nil {
			t.Errorf("%s %s: no Binfmt record", f.Rel, f.Rule.ID)
		}
		t.Logf("%s %s %s: %s", f.Rel, f.Rule.ID, f.Severity(), f.Message)
		switch {
		case f.Rel == "withc" && f.Rule.ID == fcaps.RuleForeignArch:
			if !f.Binfmt.Honoured || f.Binfmt.Interpreter != interpC || !strings.Contains(f.Message, "C flag") {
				t.Errorf("withc: %+v %q", f.Binfmt, f.Message)
			}
		case f.Rel == "withoutc" && f.Rule.ID == fcaps.RuleForeignArch:
			if f.Binfmt.Honoured || !strings.Contains(f.Message, "silently ignored") {
				t.Errorf("withoutc: %+v %q", f.Binfmt, f.Message)
			}
		case f.Rel == "none":
			if !strings.Contains(f.Message, "no enabled entry matches") {
				t.Errorf("none: %q", f.Message)
			}
		}
	}
	for _, v := range got {
		slices.Sort(v)
	}
	want := map[string][]string{
		"withc":    {"NSCAP010 info", "NSCAP011 critical"},
		"withoutc": {"NSCAP010 low", "NSCAP011 high"},
		"none":     {"NSCAP010 low"},
	}
	if fmt.Sprint(want) != fmt.Sprint(got) {
		t.Errorf("findings %v, want %v", got, want)
	}

	// Without the namespace's instance: the host's (whatever it holds).
	hb, err := fcaps.ReadBinfmt(0)
	if err != nil {
		t.Fatal(err)
	}
	if hb.Dir != fcaps.HostBinfmtDir || hb.Instance != "the host's instance" {
		t.Errorf("ReadBinfmt(0): %s (%s)", hb.Dir, hb.Instance)
	}
}
