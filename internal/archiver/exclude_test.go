package archiver

import "testing"

func TestFnmatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		p, name string
		want    bool
	}{
		{"*", "./a/b", true},
		{"*", "", true},
		{"a*", "a/b/c", true},          // "*" matches "/" (no FNM_PATHNAME)
		{"*.log", ".hidden.log", true}, // no FNM_PERIOD
		{"?", "/", true},
		{"a?c", "abc", true},
		{"a?c", "ac", false},
		{"[a-c]x", "bx", true},
		{"[!a-c]x", "bx", false},
		{"[^a-c]x", "dx", true},
		{"[]]", "]", true},
		{"[!]]", "]", false},
		{"[a-]", "-", true},
		{"we[ird", "we[ird", true}, // an unclosed "[" is literal
		{"we[ird", "weird", false},
		{`x\*y`, "x*y", true},
		{`x\*y`, "xzy", false},
		{`[\]]`, "]", true},
		{"a**b", "a/x/b", true},
		{"*a*b*", "xxaxxbxx", true},
		{"*a*b", "xxaxxbxxc", false},
		{"é?", "éü", true},
		{`trailing\`, `trailing\`, true},
		{"etc/", "etc", false},
	}
	for _, tc := range tests {
		if got := fnmatch(tc.p, tc.name); got != tc.want {
			t.Errorf("fnmatch(%q, %q) = %v, want %v", tc.p, tc.name, got, tc.want)
		}
	}
}
