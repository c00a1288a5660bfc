package fcaps

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"

	"github.com/nscap/nscap/xattrfmt"
)

// HeadLen is how many bytes of a capped file the audit reads for
// binfmt_misc: the ELF header, and what binfmt_misc magics look at in
// practice (the kernel looks at the first 256 bytes, BINPRM_BUF_SIZE).
const HeadLen = 256

// BinfmtEntry is one binfmt_misc registration, as its file in a
// binfmt_misc mount shows it (Documentation/admin-guide/binfmt-misc.rst).
type BinfmtEntry struct {
	Name        string `json:"name"`
	Enabled     bool   `json:"enabled"`
	Interpreter string `json:"interpreter"`
	// Flags are the letters of "flags:": P (preserve argv[0]), O (open
	// the binary), C (credentials from the binary; implies O), F (fix
	// the interpreter at registration).
	Flags string `json:"flags"`
	// Offset, Magic and Mask describe a magic entry; Extension an
	// extension entry.
	Offset    int    `json:"offset,omitempty"`
	Magic     []byte `json:"-"`
	Mask      []byte `json:"-"`
	Extension string `json:"extension,omitempty"`
}

// Credentials reports whether the C flag is set: the kernel then computes
// the credentials (setuid, file capabilities) from the binary rather than
// from the interpreter.
func (b BinfmtEntry) Credentials() bool { return strings.Contains(b.Flags, "C") }

// ParseBinfmtEntry parses the file of a binfmt_misc entry named name.
func ParseBinfmtEntry(name string, r io.Reader) (BinfmtEntry, error) {
	e := BinfmtEntry{Name: name}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		key, val, _ := strings.Cut(line, " ")
		var err error
		switch key {
		case "enabled":
			e.Enabled = true
		case "disabled":
		case "interpreter":
			e.Interpreter = val
		case "flags:":
			e.Flags = strings.TrimSpace(val)
		case "offset":
			e.Offset, err = strconv.Atoi(val)
		case "magic":
			e.Magic, err = hex.DecodeString(val)
		case "mask":
			e.Mask, err = hex.DecodeString(val)
		case "extension":
			e.Extension = strings.TrimPrefix(val, ".")
		}
		if err != nil {
			return BinfmtEntry{}, fmt.Errorf("binfmt_misc entry %s: %s: %w", name, key, err)
		}
	}
	if err := sc.Err(); err != nil {
		return BinfmtEntry{}, err
	}
	if e.Magic == nil && e.Extension == "" {
		return BinfmtEntry{}, fmt.Errorf("binfmt_misc entry %s: neither magic nor extension", name)
	}
	return e, nil
}

// Matches reports whether the entry applies to a file named name whose
// first bytes are head, as the kernel's check_file does.
func (b BinfmtEntry) Matches(name string, head []byte) bool {
	if !b.Enabled {
		return false
	}
	if b.Magic == nil {
		return b.Extension != "" && strings.HasSuffix(path.Base(name), "."+b.Extension)
	}
	// Offset comes from the entry's text: compare before adding, so that
	// a huge one cannot overflow.
	if b.Offset < 0 || b.Offset > len(head) || len(b.Magic) > len(head)-b.Offset {
		return false
	}
	for i, m := range b.Magic {
		c := head[b.Offset+i]
		if i < len(b.Mask) {
			c &= b.Mask[i]
			m &= b.Mask[i]
		}
		if c != m {
			return false
		}
	}
	return true
}

// ELFMachine returns the e_machine of an ELF header, ok false when head is
// no ELF header.
func ELFMachine(head []byte) (elf.Machine, bool) {
	if len(head) < 20 || !bytes.HasPrefix(head, []byte(elf.ELFMAG)) {
		return 0, false
	}
	switch elf.Data(head[elf.EI_DATA]) {
	case elf.ELFDATA2LSB:
		return elf.Machine(binary.LittleEndian.Uint16(head[18:])), true
	case elf.ELFDATA2MSB:
		return elf.Machine(binary.BigEndian.Uint16(head[18:])), true
	case elf.ELFDATANONE:
	}
	return 0, false
}

// compat are the machines a host runs natively besides its own (32-bit
// compatibility modes): without a binfmt_misc entry for them, binfmt_elf
// runs them.
var compat = map[elf.Machine][]elf.Machine{
	elf.EM_X86_64:  {elf.EM_386},
	elf.EM_AARCH64: {elf.EM_ARM},
	elf.EM_PPC64:   {elf.EM_PPC},
	elf.EM_S390:    {elf.EM_S390},
}

// Interpreter is what the audit found of a binfmt_misc interpreter, the
// file the kernel runs for a foreign binary.
type Interpreter struct {
	// Path is the interpreter as resolved (inside the namespace's root).
	Path string
	// Err says why it could not be examined (nil when it was).
	Err error
	// Mode, UID, GID and Dirs are as for [Entry].
	Mode     fs.FileMode
	UID, GID uint32
	Dirs     []DirInfo
	// Caps are its capabilities, nil when none.
	Caps *xattrfmt.FileCaps
}

// Binfmt is a binfmt_misc instance the audit checks foreign binaries
// against ([ReadBinfmt]).
type Binfmt struct {
	// Dir is the binfmt_misc mount read; Instance says whose it is.
	Dir, Instance string
	// Enabled is the instance's status; Mounted is false when no
	// binfmt_misc is mounted there (then no entry applies).
	Enabled, Mounted bool
	Entries          []BinfmtEntry
	// Host is the host's ELF machine.
	Host elf.Machine
	// Interpreters are the entries' interpreters, by Interpreter path.
	Interpreters map[string]Interpreter
}

// foreign reports whether m is neither the host's machine nor one of its
// compatibility modes.
func (b *Binfmt) foreign(m elf.Machine) bool {
	if m == b.Host {
		return false
	}
	for _, c := range compat[b.Host] {
		if m == c {
			return false
		}
	}
	return true
}

// match returns the entry the kernel would pick for the file: the first
// enabled one that matches, in the order given (the kernel tries the
// most recently registered first; ReadBinfmt cannot see that order and
// keeps the directory's).
func (b *Binfmt) match(name string, head []byte) (BinfmtEntry, bool) {
	if !b.Enabled || !b.Mounted {
		return BinfmtEntry{}, false
	}
	for _, e := range b.Entries {
		if e.Matches(name, head) {
			return e, true
		}
	}
	return BinfmtEntry{}, false
}

// BinfmtMatch says how binfmt_misc runs a capped foreign binary.
type BinfmtMatch struct {
	Dir         string `json:"dir"`
	Machine     string `json:"machine"`
	HostMachine string `json:"host_machine"`
	// Entry, Interpreter and Flags are empty when no entry matches.
	Entry       string `json:"entry,omitempty"`
	Interpreter string `json:"interpreter,omitempty"`
	Flags       string `json:"flags,omitempty"`
	// Honoured: the C flag is set, the file's caps apply.
	Honoured bool `json:"honoured"`
}

// checkBinfmt adds the binfmt_misc findings of e (a capped regular file
// with its first bytes) through add and lower (which caps the severity of
// the finding just added).
func (a *Auditor) checkBinfmt(e *Entry, v view, add func(string, string), lower func(Severity), set func(*BinfmtMatch), guess func()) {
	b := a.opts.Binfmt
	if b == nil || e.Head == nil {
		return
	}
	m, ok := ELFMachine(e.Head)
	if !ok || !b.foreign(m) {
		return
	}
	bm := &BinfmtMatch{Dir: b.Dir, Machine: m.String(), HostMachine: b.Host.String()}
	ent, ok := b.match(e.Rel, e.Head)
	what := fmt.Sprintf("ELF for %s on a %s host", m, b.Host)
	if !ok {
		why := "no enabled entry matches"
		if !b.Mounted {
			why = "binfmt_misc is not mounted there"
		} else if !b.Enabled {
			why = "binfmt_misc is disabled there"
		}
		add(RuleForeignArch, fmt.Sprintf("%s: %s in %s (%s), so it cannot be executed and its capabilities are never used", what, why, b.Dir, b.Instance))
		set(bm)
		return
	}
	bm.Entry, bm.Interpreter, bm.Flags, bm.Honoured = ent.Name, ent.Interpreter, ent.Flags, ent.Credentials()
	reg := fmt.Sprintf("binfmt_misc entry %s of %s runs it with %s (flags %q)", ent.Name, b.Dir, ent.Interpreter, ent.Flags)
	if ent.Credentials() {
		add(RuleForeignArch, fmt.Sprintf("%s: %s; the C flag takes the credentials from the binary, so its capabilities are honoured", what, reg))
		lower(SeverityInfo)
	} else {
		add(RuleForeignArch, fmt.Sprintf("%s: %s; without the C flag the credentials come from the interpreter, so its capabilities are silently ignored", what, reg))
	}
	set(bm)

	in, ok := b.Interpreters[ent.Interpreter]
	if !ok || in.Err != nil {
		return
	}
	ie := Entry{Path: in.Path, Mode: in.Mode, UID: in.UID, GID: in.GID, Dirs: in.Dirs}
	if why, byMode := a.writable(&ie, v); why != "" {
		why = strings.TrimPrefix(why, "a non-root user can modify or replace this file with capabilities: ")
		if ent.Credentials() {
			add(RuleBinfmtInterpreter, fmt.Sprintf("the interpreter %s is writable by a non-root user (%s), and with the C flag it runs with this file's capabilities: whoever writes it runs code with them", in.Path, why))
		} else {
			add(RuleBinfmtInterpreter, fmt.Sprintf("the interpreter %s is writable by a non-root user (%s): whoever writes it runs code as everyone executing a %s binary (this file's capabilities are not at stake: no C flag)", in.Path, why, m))
			lower(SeverityMedium)
		}
		set(bm)
		if v.guessed && !byMode {
			guess()
		}
	}
	if in.Caps != nil {
		add(RuleBinfmtInterpreter, fmt.Sprintf("the interpreter %s carries capabilities %s: without the C flag every %s binary runs with them; with it they are ignored", in.Path, in.Caps, m))
		if ent.Credentials() {
			lower(SeverityLow)
		} else {
			lower(SeverityHigh)
		}
		set(bm)
	}
}
