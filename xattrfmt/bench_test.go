package xattrfmt

import "testing"

func BenchmarkDecode(b *testing.B) {
	raw := unhex(b, "01000003 00300000 00200000 00000000 00000000 a0860100")
	for b.Loop() {
		if _, err := Decode(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	c := FileCaps{Revision: Revision3, Effective: true, Permitted: 1<<12 | 1<<13, RootID: 100000}
	for b.Loop() {
		if _, err := Encode(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkString(b *testing.B) {
	c := Caps{Effective: 0xaa, Permitted: 0xcc | 1<<50, Inheritable: 0xf0}
	for b.Loop() {
		_ = c.String()
	}
}

func BenchmarkParseText(b *testing.B) {
	for b.Loop() {
		if _, err := ParseText("cap_net_admin,cap_net_raw=eip cap_sys_admin+p 41-e"); err != nil {
			b.Fatal(err)
		}
	}
}
