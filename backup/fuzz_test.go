package backup

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nscap/nscap/internal/archive"
	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
)

// fuzzMaps are the maps the fuzz targets pick from.
var fuzzMaps = func() []userns.Map {
	var ms []userns.Map
	for _, s := range []string{"0:100000:65536", "0:1000:1,1:100000:65536", "0:0:4294967295", "5:7:3,100:0:5"} {
		m, err := userns.ParseMap(s)
		if err != nil {
			panic(err)
		}
		ms = append(ms, m)
	}
	return append(ms, userns.Map{})
}()

// FuzzTranslateCaps: never panics; a result is a valid value; translating
// back gives the input with its root re-encoded (a v3 whose root is host 0
// comes back as v2: the forms the kernel treats alike).
func FuzzTranslateCaps(f *testing.F) {
	for _, raw := range [][]byte{testutil.RawCaps(2, 0), testutil.RawCaps(3, 100000), testutil.RawCaps(3, 101000), testutil.RawCaps(3, 0), testutil.RawCaps(3, 7), {1, 0, 0, 1}, nil} {
		f.Add(raw, uint8(0))
		f.Add(raw, uint8(1))
	}
	f.Fuzz(func(t *testing.T, raw []byte, sel uint8) {
		m := fuzzMaps[int(sel)%len(fuzzMaps)]
		out, err := CapsToArchive(raw, m)
		if err != nil {
			if out != nil {
				t.Fatalf("CapsToArchive(%x) = %x with error %v", raw, out, err)
			}
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrForeignCaps) {
				t.Fatalf("CapsToArchive(%x): error %v matches no sentinel", raw, err)
			}
			return
		}
		if _, err := archive.CapsRoot(out); err != nil {
			t.Fatalf("CapsToArchive(%x) = %x, invalid: %v", raw, out, err)
		}
		back, err := CapsFromArchive(out, m)
		if err != nil {
			t.Fatalf("CapsFromArchive(%x): %v", out, err)
		}
		want := raw
		if !m.IsZero() {
			root, _ := archive.CapsRoot(raw)
			want = archive.CapsWithRoot(raw, root)
		}
		if !bytes.Equal(back, want) {
			t.Fatalf("round trip of %x = %x, want %x", raw, back, want)
		}
	})
}

// FuzzTranslateACL: never panics; translating to the archive and back
// gives the input exactly (the maps are bijections on what they cover).
func FuzzTranslateACL(f *testing.F) {
	f.Add(rawACL(101000, 100007), uint8(0))
	f.Add(rawACL(5, 9), uint8(3))
	f.Add([]byte{2, 0, 0, 0}, uint8(4))
	f.Add([]byte{2, 0, 0, 0, 0x40, 0, 0, 0, 0, 0, 0, 0}, uint8(4))
	f.Fuzz(func(t *testing.T, raw []byte, sel uint8) {
		u := fuzzMaps[int(sel)%len(fuzzMaps)]
		g := fuzzMaps[int(sel/8)%len(fuzzMaps)]
		out, err := ACLToArchive(raw, u, g)
		if err != nil {
			if out != nil || (!errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnmapped)) {
				t.Fatalf("ACLToArchive(%x) = %x, %v", raw, out, err)
			}
			return
		}
		back, err := ACLFromArchive(out, u, g)
		if err != nil || !bytes.Equal(back, raw) {
			t.Fatalf("round trip of %x = %x, %v", raw, back, err)
		}
	})
}
