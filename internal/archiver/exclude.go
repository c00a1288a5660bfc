package archiver

import "unicode/utf8"

// ExcludeMatch reports whether the archive name ("./a/b") is excluded by
// one of patterns, as GNU tar's --exclude matches it by default
// (--wildcards, --no-anchored, --wildcards-match-slash): a pattern
// matches the whole name or any part of it that starts after a "/", and
// "*", "?" and "[...]" match "/" too (fnmatch(3) without FNM_PATHNAME or
// FNM_PERIOD).
func ExcludeMatch(patterns []string, name string) bool {
	for _, p := range patterns {
		if fnmatch(p, name) {
			return true
		}
		for i := 0; i < len(name); i++ {
			if name[i] == '/' && i+1 < len(name) && name[i+1] != '/' && fnmatch(p, name[i+1:]) {
				return true
			}
		}
	}
	return false
}

// fnmatch matches name against the shell pattern p as fnmatch(3) does
// with no flags: "*" matches any string (slashes and leading dots
// included), "?" any one character, "[...]" a character class ("!" or "^"
// negates, "a-z" ranges, "]" first is literal), and "\" quotes the next
// character. An unclosed "[" matches itself.
func fnmatch(p, name string) bool {
	// Iterative matching with backtracking to the last "*".
	px, nx := 0, 0
	starP, starN := -1, -1
	for nx < len(name) || px < len(p) {
		if px < len(p) {
			switch c := p[px]; c {
			case '*':
				for px < len(p) && p[px] == '*' {
					px++
				}
				starP, starN = px, nx
				continue
			case '?':
				if nx < len(name) {
					_, w := utf8.DecodeRuneInString(name[nx:])
					px++
					nx += w
					continue
				}
			case '[':
				if nx < len(name) {
					r, w := utf8.DecodeRuneInString(name[nx:])
					if ok, end, valid := matchClass(p, px, r); valid {
						if ok {
							px = end
							nx += w
							continue
						}
					} else if c == name[nx] { // an unclosed "[" is literal
						px++
						nx++
						continue
					}
				}
			case '\\':
				q := px + 1
				if q >= len(p) {
					q = px // a trailing backslash matches itself
				}
				if nx < len(name) && p[q] == name[nx] {
					px = q + 1
					nx++
					continue
				}
			default:
				if nx < len(name) && c == name[nx] {
					px++
					nx++
					continue
				}
			}
		}
		if starP >= 0 && starN < len(name) {
			_, w := utf8.DecodeRuneInString(name[starN:])
			starN += w
			px, nx = starP, starN
			continue
		}
		return false
	}
	return true
}

// matchClass matches r against the class starting at p[px] == '['. It
// returns whether r is in it, the index after the class, and whether the
// class is closed at all.
func matchClass(p string, px int, r rune) (ok bool, end int, valid bool) {
	i := px + 1
	neg := false
	if i < len(p) && (p[i] == '!' || p[i] == '^') {
		neg = true
		i++
	}
	first := true
	for i < len(p) {
		if p[i] == ']' && !first {
			return ok != neg, i + 1, true
		}
		first = false
		lo, w := classChar(p, i)
		i += w
		hi := lo
		if i+1 < len(p) && p[i] == '-' && p[i+1] != ']' {
			hi, w = classChar(p, i+1)
			i += 1 + w
		}
		if lo <= r && r <= hi {
			ok = true
		}
	}
	return false, 0, false
}

// classChar returns the character of a class at p[i] (a backslash quotes
// the next one) and its width in p.
func classChar(p string, i int) (rune, int) {
	if p[i] == '\\' && i+1 < len(p) {
		r, w := utf8.DecodeRuneInString(p[i+1:])
		return r, 1 + w
	}
	r, w := utf8.DecodeRuneInString(p[i:])
	return r, w
}
