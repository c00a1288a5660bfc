package userns

import (
	"strconv"
	"strings"
)

// ParseMap parses the flag form of a map, the notation of podman's
// --uidmap: "NS:HOST:COUNT[,NS:HOST:COUNT...]", three unsigned decimal
// numbers per extent, no spaces. The map is then validated as by
// [NewMap]. Errors are [*MapError]s naming the extent; a malformed extent
// wraps [ErrSyntax], an empty string [ErrEmpty].
//
// [Map.String] gives the canonical text back, so ParseMap(m.String())
// equals m.
func ParseMap(s string) (Map, error) {
	if s == "" {
		return Map{}, &MapError{Extent: -1, Err: ErrEmpty}
	}
	parts := strings.Split(s, ",")
	if len(parts) > MaxExtents+1 {
		// Fail before parsing an arbitrarily long input; NewMap would
		// report the same rule.
		parts = parts[:MaxExtents+1]
	}
	ext := make([]Extent, len(parts))
	for i, p := range parts {
		f := strings.Split(p, ":")
		if len(f) != 3 {
			return Map{}, &MapError{
				Extent: i, Text: p, Err: ErrSyntax,
				Detail: "want NS:HOST:COUNT (three numbers separated by colons)",
			}
		}
		var err error
		for k, name := range [3]string{"inside id", "outside id", "count"} {
			var v uint32
			if v, err = parseDecimal(f[k]); err != nil {
				return Map{}, &MapError{Extent: i, Text: p, Err: ErrSyntax, Detail: name + " " + strconv.Quote(f[k]) + ": " + err.Error()}
			}
			switch k {
			case 0:
				ext[i].NsID = v
			case 1:
				ext[i].HostID = v
			case 2:
				ext[i].Count = v
			}
		}
	}
	return newMap(ext, parts)
}

// ParseMapFlags parses the values of a repeated --uidmap flag: each value
// holds one or more extents in the form of [ParseMap], and together they
// form one map. Extent indexes in errors count across all values.
func ParseMapFlags(values []string) (Map, error) {
	return ParseMap(strings.Join(values, ","))
}

// errNumber is the detail of a malformed number.
type errNumber string

func (e errNumber) Error() string { return string(e) }

// parseDecimal parses an unsigned decimal number of at most 32 bits: only
// the digits 0-9, at least one (no sign, no 0x, no spaces).
func parseDecimal(s string) (uint32, error) {
	if s == "" {
		return 0, errNumber("missing number")
	}
	var v uint64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, errNumber("not a decimal number")
		}
		v = v*10 + uint64(c-'0')
		if v > uint64(InvalidID) {
			return 0, errNumber("above 4294967295")
		}
	}
	return uint32(v), nil
}

// isSpace reports the characters the kernel's isspace accepts inside a
// uid_map line ('\n' ends the line). The kernel also counts byte 0xA0 as
// space; this package does not.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r' }

// ParseProcMap parses /proc/PID/uid_map or gid_map text with the grammar
// the kernel accepts on write (map_write in kernel/user_namespace.c): one
// extent per line "NS HOST COUNT", decimal only (no sign, no 0x), any
// spaces or tabs around and between the fields, the final newline
// optional, no empty line (not even a doubled final newline). The padded
// output of a read is accepted as is. The map is then validated as by
// [NewMap]; errors are [*MapError]s naming the extent (line number minus
// one) and wrapping [ErrSyntax] or the broken rule.
//
// Unlike the kernel, numbers above 4294967295 are refused (the kernel
// truncates them silently), and the 4096-byte limit of a single write is
// not applied, since a map read back may be longer. Text read from /proc
// whose column 2 shows 4294967295 (an id the reader's namespace does not
// map) is refused with [ErrInvalidID]; [ReadMaps] drops such lines.
func ParseProcMap(s string) (Map, error) {
	ext, lines, err := parseProcLines(s)
	if err != nil {
		return Map{}, err
	}
	return newMap(ext, lines)
}

// parseProcLines splits /proc map text into extents, checking the syntax
// only.
func parseProcLines(s string) ([]Extent, []string, error) {
	s = strings.TrimSuffix(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > MaxExtents+1 {
		lines = lines[:MaxExtents+1]
	}
	ext := make([]Extent, len(lines))
	for i, line := range lines {
		var f [3]uint32
		rest := line
		for k, name := range [3]string{"inside id", "outside id", "count"} {
			j := 0
			for j < len(rest) && isSpace(rest[j]) {
				j++
			}
			rest = rest[j:]
			j = 0
			for j < len(rest) && !isSpace(rest[j]) {
				j++
			}
			field := rest[:j]
			rest = rest[j:]
			if field == "" {
				detail := "want NS HOST COUNT: missing " + name
				if strings.TrimLeft(line, " \t\v\f\r") == "" {
					detail = "empty line"
				}
				return nil, nil, &MapError{Extent: i, Text: line, Err: ErrSyntax, Detail: detail}
			}
			v, err := parseDecimal(field)
			if err != nil {
				return nil, nil, &MapError{Extent: i, Text: line, Err: ErrSyntax, Detail: name + " " + strconv.Quote(field) + ": " + err.Error()}
			}
			f[k] = v
		}
		for j := 0; j < len(rest); j++ {
			if !isSpace(rest[j]) {
				return nil, nil, &MapError{Extent: i, Text: line, Err: ErrSyntax, Detail: "trailing text " + strconv.Quote(strings.TrimLeft(rest, " \t\v\f\r"))}
			}
		}
		ext[i] = Extent{NsID: f[0], HostID: f[1], Count: f[2]}
	}
	return ext, lines, nil
}

// parseShownMap parses a map as a read of /proc/PID/uid_map displays it to
// the reader: lines whose column 2 is 4294967295 (outside ids the reader
// cannot see) are dropped and returned apart.
func parseShownMap(s string) (Map, []Extent, error) {
	ext, lines, err := parseProcLines(s)
	if err != nil {
		return Map{}, nil, err
	}
	var keep, hidden []Extent
	var texts []string
	for i, e := range ext {
		if e.HostID == InvalidID {
			hidden = append(hidden, e)
			continue
		}
		keep = append(keep, e)
		texts = append(texts, lines[i])
	}
	if len(keep) == 0 {
		return Map{}, hidden, nil
	}
	m, err := newMap(keep, texts)
	return m, hidden, err
}
