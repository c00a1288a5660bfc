package xattrfmt

import (
	"fmt"
	"strings"
)

// State flags of one capability, as libcap's cap_to_text numbers them
// (LIBCAP_EFF, LIBCAP_PER, LIBCAP_INH).
const (
	stEff = 1
	stPer = 2
	stInh = 4
)

// ParseText parses capability text exactly as libcap 2.66's C
// cap_from_text does (see cap_from_text(3)), starting from the empty
// state.
//
// The text is a sequence of clauses separated by white space. A clause is
// a list of capabilities followed by one or more operator/flags pairs:
//
//   - the list is comma-separated names (any letter case), numbers below 64
//     (C base-0 notation: 13, 0xd, 015) or "all" (capabilities 0 through
//     [LastCap]); "all" replaces what precedes it in the list. An empty
//     list means all, and is only allowed before "=";
//   - "=" clears the listed capabilities in all three sets, then raises
//     them in the sets named by its flags (which may be none); "+" raises
//     and "-" lowers them in the named sets; "=+" and "=-" clear first;
//   - flags are letters from "e", "i" and "p"; after the first operator
//     only "+" and "-" may follow, each with at least one flag
//     ("cap_net_raw+ep-i").
//
// Later clauses change only the capabilities they list, so
// "cap_net_raw=ep cap_sys_admin=i" keeps cap_net_raw (unlike the Go cap
// package's FromText). The empty text is the empty state. Text that C
// refuses gives a [*SyntaxError] matching [ErrSyntax]; so does a NUL byte,
// which C could never see.
func ParseText(s string) (Caps, error) {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return Caps{}, syntaxError(s, i, "NUL byte")
	}
	var c Caps
	i := 0
	for {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
		if i == len(s) {
			return c, nil
		}
		list, listed, j, err := parseList(s, i)
		if err != nil {
			return Caps{}, err
		}
		op, j, err := parseOp(s, j, listed)
		if err != nil {
			return Caps{}, err
		}
		if i, err = c.parseFlags(s, j, op, list, listed); err != nil {
			return Caps{}, err
		}
	}
}

// syntaxError is the [*SyntaxError] of text s at offset i.
func syntaxError(s string, i int, format string, args ...any) error {
	return &SyntaxError{Text: s, Offset: i, Msg: fmt.Sprintf(format, args...)}
}

// parseList parses the capabilities a clause starting at s[i] applies to;
// listed says that the clause names them (an empty list means all). It
// returns the offset past the list.
func parseList(s string, i int) (list CapSet, listed bool, next int, err error) {
	switch {
	case isAlnum(s[i]) || s[i] == '_':
		for {
			if j, ok := matchAll(s, i); ok {
				list = KnownCaps // libcap's forceall assigns, not ORs
				i = j
			} else {
				bit, j, ok := lookupName(s, i)
				if !ok {
					return 0, false, i, syntaxError(s, i, "unknown capability %q", word(s, i))
				}
				list |= 1 << uint(bit)
				i = j
			}
			if i >= len(s) || s[i] != ',' {
				break
			}
			i++
			if i >= len(s) || !isAlnum(s[i]) && s[i] != '_' {
				return 0, false, i, syntaxError(s, i, "expected a capability name after ','")
			}
		}
		listed = true
	case s[i] == '+' || s[i] == '-':
		return 0, false, i, syntaxError(s, i, "operator %q needs a list of capabilities", s[i])
	default:
		list = KnownCaps
	}
	return list, listed, i, nil
}

// parseOp parses the first operator of a clause at s[i]: '=', '+', '-',
// 'P' for "=+" or 'M' for "=-". It returns the offset past it.
func parseOp(s string, i int, listed bool) (op byte, next int, err error) {
	if i >= len(s) {
		return 0, i, syntaxError(s, i, "expected an operator (=, + or -)")
	}
	op = s[i]
	i++
	if op == '=' && i < len(s) && (s[i] == '+' || s[i] == '-') {
		if !listed {
			return 0, i, syntaxError(s, i, "operator \"=%c\" needs a list of capabilities", s[i])
		}
		op = 'P'
		if s[i] == '-' {
			op = 'M'
		}
		i++
	} else if op != '+' && op != '-' && op != '=' {
		return 0, i, syntaxError(s, i-1, "expected an operator (=, + or -), got %q", op)
	}
	return op, i, nil
}

// parseFlags parses the flags of op at s[i], and further +/- operators
// with theirs, applying each to list in c. It returns the offset past the
// clause.
func (c *Caps) parseFlags(s string, i int, op byte, list CapSet, listed bool) (int, error) {
	flags := 0
	for {
		if i < len(s) && !isSpace(s[i]) {
			switch s[i] {
			case 'e':
				flags |= stEff
			case 'i':
				flags |= stInh
			case 'p':
				flags |= stPer
			default:
				return i, syntaxError(s, i, "expected a flag (e, i or p), got %q", s[i])
			}
			i++
		} else if op != '=' {
			return i, syntaxError(s, i, "only '=' may be followed by no flags")
		}
		c.apply(op, flags, list)
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			if !listed {
				return i, syntaxError(s, i, "operator %q needs a list of capabilities", s[i])
			}
			flags = 0
			op = s[i]
			i++
			if i >= len(s) || !isAlpha(s[i]) {
				return i, syntaxError(s, i, "expected a flag (e, i or p) after %q", op)
			}
		}
		if i >= len(s) || isSpace(s[i]) {
			return i, nil
		}
	}
}

// apply performs one cap_from_text action on list.
func (c *Caps) apply(op byte, flags int, list CapSet) {
	switch op {
	case '=', 'P', 'M':
		c.Effective &^= list
		c.Permitted &^= list
		c.Inheritable &^= list
		if op == 'M' {
			return // "=-" clears and lowers: already done
		}
		fallthrough
	case '+':
		if flags&stEff != 0 {
			c.Effective |= list
		}
		if flags&stPer != 0 {
			c.Permitted |= list
		}
		if flags&stInh != 0 {
			c.Inheritable |= list
		}
	case '-':
		if flags&stEff != 0 {
			c.Effective &^= list
		}
		if flags&stPer != 0 {
			c.Permitted &^= list
		}
		if flags&stInh != 0 {
			c.Inheritable &^= list
		}
	}
}

// matchAll reports whether "all" (any case) starts at s[i] and is not
// the prefix of a longer word (libcap namcmp).
func matchAll(s string, i int) (int, bool) {
	if len(s)-i < 3 || !strings.EqualFold(s[i:i+3], "all") {
		return i, false
	}
	if j := i + 3; j < len(s) && (isAlnum(s[j]) || s[j] == '_') {
		return i, false
	}
	return i + 3, true
}

// word returns the name-like run starting at s[i], for error messages.
func word(s string, i int) string {
	j := i
	for j < len(s) && (isAlnum(s[j]) || s[j] == '_') {
		j++
	}
	return s[i:j]
}

// state returns the libcap state flags of capability n.
func (c Caps) state(n int) int {
	f := 0
	if c.Effective.Has(n) {
		f |= stEff
	}
	if c.Permitted.Has(n) {
		f |= stPer
	}
	if c.Inheritable.Has(n) {
		f |= stInh
	}
	return f
}

// appendFlags writes the flags of state f in libcap's order: e, i, p.
func appendFlags(b []byte, f int) []byte {
	if f&stEff != 0 {
		b = append(b, 'e')
	}
	if f&stInh != 0 {
		b = append(b, 'i')
	}
	if f&stPer != 0 {
		b = append(b, 'p')
	}
	return b
}

// String returns the text libcap 2.66's C cap_to_text gives for c; for a
// file's caps, what getcap prints.
//
// The most common state among the named capabilities (0 through [LastCap];
// the lowest state wins ties) becomes the base "=flags"; then, for each
// other state from eip down to none, the capabilities in it are listed
// with "+flags" and/or "-flags" relative to the base. When the base is
// empty, the first such clause uses "=" and drops the leading "= ". Bits
// above [LastCap] follow as numbers with "+flags". Examples: "=",
// "cap_net_raw=ep", "=ep", "cap_chown=i cap_setuid+p", "= 41,63+p".
// [ParseText] of the result gives c back.
func (c Caps) String() string {
	const named = LastCap + 1 // libcap's cap_max_bits()
	var histo [8]int
	for n := 0; n < named; n++ {
		histo[c.state(n)]++
	}
	m := 7
	for t := 6; t >= 0; t-- {
		if histo[t] >= histo[m] {
			m = t
		}
	}

	buf := make([]byte, 0, 64)
	buf = appendFlags(append(buf, '='), m)
	base := 0
	for t := 7; t >= 0; t-- {
		if t == m || histo[t] == 0 {
			continue
		}
		buf = append(buf, ' ')
		buf = appendNames(buf, c, t, 0, named)
		if n := t &^ m; n != 0 {
			op := byte('+')
			if buf[base] == '=' && buf[base+1] == ' ' {
				// "= foo+eip" is said "foo=eip".
				base += 2
				op = '='
			}
			buf = appendFlags(append(buf, op), n)
		}
		if n := m &^ t; n != 0 {
			buf = appendFlags(append(buf, '-'), n)
		}
	}

	histo = [8]int{}
	for n := named; n < 64; n++ {
		histo[c.state(n)]++
	}
	for t := 7; t >= 1; t-- {
		if histo[t] == 0 {
			continue
		}
		buf = append(buf, ' ')
		buf = appendNames(buf, c, t, named, 64)
		buf = appendFlags(append(buf, '+'), t)
	}
	return string(buf[base:])
}

// appendNames writes the comma list of capabilities in [from, to) whose
// state is t.
func appendNames(b []byte, c Caps, t, from, to int) []byte {
	first := true
	for n := from; n < to; n++ {
		if c.state(n) != t {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, Name(n)...)
	}
	return b
}

// FileCaps converts c to the revision-2 file caps setcap writes for it
// (libcap _fcaps_save). A file has one effective bit: it is set when the
// effective set is non-empty, which then must include every permitted and
// inheritable capability, or FileCaps fails with [ErrEffective]. Like
// libcap, it accepts an effective set larger than permitted|inheritable
// (setcap accepts "cap_net_raw=e" and writes the effective bit with empty
// sets): the surplus cannot be stored and is dropped.
func (c Caps) FileCaps() (FileCaps, error) {
	if c.Effective != 0 {
		if missing := (c.Permitted | c.Inheritable) &^ c.Effective; missing != 0 {
			return FileCaps{}, fmt.Errorf("%w (not effective: %s)", ErrEffective, missing)
		}
	}
	return FileCaps{
		Revision:    Revision2,
		Effective:   c.Effective != 0,
		Permitted:   c.Permitted,
		Inheritable: c.Inheritable,
	}, nil
}

// ParseFileText parses text as setcap does: [ParseText], then
// [Caps.FileCaps]. The result is revision 2; set Revision and RootID for a
// namespaced value.
func ParseFileText(s string) (FileCaps, error) {
	c, err := ParseText(s)
	if err != nil {
		return FileCaps{}, err
	}
	return c.FileCaps()
}
