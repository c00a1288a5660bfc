package xattrfmt

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// textGen makes random capability text for the oracle tests. Most of it is
// valid; some is deliberately broken.
type textGen struct {
	r *rand.Rand
	// fileShaped biases towards states setcap accepts (effective all or
	// nothing).
	fileShaped bool
}

func (g textGen) pick(opts ...string) string { return opts[g.r.IntN(len(opts))] }

func (g textGen) name() string {
	switch k := g.r.IntN(20); {
	case k < 10:
		return capNames[g.r.IntN(len(capNames))]
	case k < 12:
		return strings.ToUpper(capNames[g.r.IntN(len(capNames))])
	case k < 15:
		return fmt.Sprint(41 + g.r.IntN(23))
	case k < 16:
		return fmt.Sprint(g.r.IntN(41))
	case k < 17:
		return fmt.Sprintf("0x%x", g.r.IntN(64))
	case k < 18:
		return fmt.Sprintf("0%o", g.r.IntN(64))
	case k < 19:
		return g.pick("all", "ALL", "All")
	default:
		return g.pick("64", "99", "cap_foo", "0x", "cap_net_raw2", "_x", "1e")
	}
}

func (g textGen) flags(allowEmpty bool) string {
	if g.fileShaped {
		return g.pick("ep", "eip", "ei", "pe", "p", "i", "ip", "pi", "e")
	}
	var b []byte
	for _, f := range []byte("eip") {
		if g.r.IntN(2) == 0 {
			b = append(b, f)
		}
	}
	g.r.Shuffle(len(b), func(i, j int) { b[i], b[j] = b[j], b[i] })
	if len(b) == 0 && !allowEmpty {
		b = append(b, "eip"[g.r.IntN(3)])
	}
	if g.r.IntN(10) == 0 && len(b) > 0 {
		b = append(b, b[0]) // repeated flag
	}
	return string(b)
}

func (g textGen) clause() string {
	var b strings.Builder
	empty := g.r.IntN(8) == 0
	if !empty {
		n := 1 + g.r.IntN(3)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(g.name())
		}
	}
	switch op := g.pick("=", "=", "+", "+", "-", "=+", "=-"); {
	case empty:
		b.WriteString("=" + g.flags(true))
	case op == "=":
		b.WriteString("=" + g.flags(true))
	default:
		b.WriteString(op + g.flags(false))
	}
	if !empty {
		for range g.r.IntN(3) {
			if g.r.IntN(3) == 0 || (g.fileShaped && g.r.IntN(2) == 0) {
				break
			}
			b.WriteString(g.pick("+", "-") + g.flags(false))
		}
	}
	return b.String()
}

func (g textGen) text() string {
	n := 1 + g.r.IntN(4)
	var parts []string
	for range n {
		parts = append(parts, g.clause())
	}
	s := strings.Join(parts, g.pick(" ", " ", " ", "  ", "\t", "\n"))
	if g.r.IntN(10) == 0 {
		s = g.pick(" ", "\t") + s + g.pick(" ", "\n")
	}
	if g.r.IntN(12) == 0 { // break it
		i := g.r.IntN(len(s) + 1)
		s = s[:i] + g.pick(",", ";", "=", "+", "-", "E", "x", "", " ") + s[i:]
	}
	return s
}
