package xattrfmt

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func FuzzDecode(f *testing.F) {
	for _, v := range vectors {
		f.Add(unhex(f, v.hex))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0, 0})
	f.Add(unhex(f, "01010002 00200000 00000000 00000000 00000000"))
	f.Add(unhex(f, "01000002 00200000 00000000 00000000 00000000 00000000"))
	f.Add(unhex(f, "01000004 00200000 00000000 00000000 00000000"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Decode(b)
		if err != nil {
			if c != (FileCaps{}) {
				t.Fatalf("Decode(%x) = %+v, %v; want the zero value on error", b, c, err)
			}
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("Decode(%x): %v is not a *DecodeError", b, err)
			}
			return
		}
		enc, err := Encode(c)
		if err != nil {
			t.Fatalf("Encode(Decode(%x) = %+v): %v", b, c, err)
		}
		// Decode is strict, so the only accepted encoding is canonical.
		if !cmp.Equal(enc, b) {
			t.Fatalf("Encode(Decode(%x)) = %x", b, enc)
		}
		c2, err := Decode(enc)
		if err != nil || c2 != c {
			t.Fatalf("Decode(Encode(%+v)) = %+v, %v", c, c2, err)
		}
		_ = c.String()
	})
}

func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(2), uint64(1<<13), uint64(0), true, uint32(0))
	f.Add(uint8(3), uint64(1<<13), uint64(1<<21), false, uint32(100000))
	f.Add(uint8(1), uint64(1<<31), uint64(1), true, uint32(0))
	f.Add(uint8(1), uint64(1<<32), uint64(0), true, uint32(0))
	f.Add(uint8(2), ^uint64(0), ^uint64(0), true, uint32(5))
	f.Add(uint8(0), uint64(0), uint64(0), false, uint32(0))
	f.Fuzz(func(t *testing.T, rev uint8, perm, inh uint64, eff bool, rootid uint32) {
		c := FileCaps{Revision: Revision(rev), Effective: eff, Permitted: CapSet(perm), Inheritable: CapSet(inh), RootID: rootid}
		b, err := Encode(c)
		wantErr := c.Revision.Size() == 0 || (c.Revision != Revision3 && rootid != 0) ||
			(c.Revision == Revision1 && (perm|inh)>>32 != 0)
		if wantErr {
			if err == nil || b != nil {
				t.Fatalf("Encode(%+v) = %x, %v; want an error", c, b, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("Encode(%+v): %v", c, err)
		}
		if len(b) != c.Revision.Size() {
			t.Fatalf("Encode(%+v) is %d bytes", c, len(b))
		}
		got, err := Decode(b)
		if err != nil || got != c {
			t.Fatalf("Decode(Encode(%+v) = %x) = %+v, %v", c, b, got, err)
		}
		// The text of the state parses back to the same state.
		s := c.Caps()
		back, err := ParseText(s.String())
		if err != nil || back != s {
			t.Fatalf("ParseText(%q) = %+v, %v; want %+v", s.String(), back, err, s)
		}
	})
}

func FuzzParseText(f *testing.F) {
	for _, s := range fixedTexts {
		f.Add(s)
	}
	for _, v := range vectors {
		f.Add(v.text)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseText(s)
		if err != nil {
			if c != (Caps{}) || !errors.Is(err, ErrSyntax) {
				t.Fatalf("ParseText(%q) = %+v, %v", s, c, err)
			}
			return
		}
		text := c.String()
		c2, err := ParseText(text)
		if err != nil || c2 != c {
			t.Fatalf("ParseText(%q) = %+v; its text %q parses to %+v, %v", s, c, text, c2, err)
		}
		if text2 := c2.String(); text2 != text {
			t.Fatalf("String is not a fixed point: %q -> %q", text, text2)
		}
		if fc, err := c.FileCaps(); err == nil {
			if _, err := Encode(fc); err != nil {
				t.Fatalf("Encode(%+v): %v", fc, err)
			}
		} else if !errors.Is(err, ErrEffective) {
			t.Fatalf("FileCaps(%+v): %v", c, err)
		}
	})
}
