package shifter

import (
	"bytes"
	"strings"
	"testing"

	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
)

// FuzzShiftFix: the journal's "fix" records never panic the parser, and a
// record that parses is written back as the same record.
func FuzzShiftFix(f *testing.F) {
	f.Add(fixRecord(12, 200000, 200000, 0o4755, testutil.RawCaps(3, 200000), "usr/bin/ping"))
	f.Add(fixRecord(7, 0, 0, 0o755, nil, `a "quoted"\nname`))
	f.Add("fix 1 2 3 9999 - \"x\"\n")
	f.Add("fix 1 2 3 755 zz \"x\"\n")
	f.Fuzz(func(t *testing.T, line string) {
		fx, ok := parseShiftFix(strings.TrimSuffix(line, "\n"))
		if !ok {
			return
		}
		again := fixRecord(fx.ino, fx.uid, fx.gid, fx.mode, fx.caps, fx.path)
		fy, ok := parseShiftFix(strings.TrimSuffix(again, "\n"))
		if !ok || fy.ino != fx.ino || fy.uid != fx.uid || fy.gid != fx.gid || fy.mode != fx.mode || fy.path != fx.path || !bytes.Equal(fy.caps, fx.caps) {
			t.Fatalf("%q parses as %+v, written back as %q, which parses as %+v (%v)", line, fx, again, fy, ok)
		}
	})
}

// FuzzShiftTranslate: moving a cap or an ACL from one map to another never
// panics, and moving it back gives the value the first move started from
// (when every id was in the source map).
func FuzzShiftTranslate(f *testing.F) {
	for _, raw := range [][]byte{testutil.RawCaps(2, 0), testutil.RawCaps(3, 100000), testutil.RawCaps(3, 101000), testutil.RawCaps(3, 7), {2, 0, 0, 0}, nil} {
		f.Add(raw, uint8(0))
	}
	f.Add([]byte{2, 0, 0, 0, 1, 0, 7, 0, 0xff, 0xff, 0xff, 0xff, 2, 0, 4, 0, 0xa0, 0x86, 0x01, 0}, uint8(1))
	f.Fuzz(func(t *testing.T, raw []byte, pick uint8) {
		pairs := [][2]string{{"0:100000:65536", "0:200000:65536"}, {"0:0:65536", "0:300000:65536"}, {"0:100000:1000,1000:500000:64536", "0:200000:65536"}}
		p := pairs[int(pick)%len(pairs)]
		a, err1 := userns.ParseMap(p[0])
		b, err2 := userns.ParseMap(p[1])
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		fwd, back := shiftMaps{a, a, b, b}, shiftMaps{b, b, a, a}
		if pick&0x80 == 0 {
			out, _, _, foreign, err := fwd.caps(raw)
			if err != nil || foreign {
				return
			}
			again, _, _, foreign, err := back.caps(out)
			if err != nil || foreign {
				t.Fatalf("caps %x -> %x: back: %v foreign=%v", raw, out, err, foreign)
			}
			if want, _, _, _, _ := (shiftMaps{a, a, a, a}).caps(raw); !bytes.Equal(again, want) {
				t.Fatalf("caps %x -> %x -> %x, want %x", raw, out, again, want)
			}
			return
		}
		out, unmoved, err := fwd.acl(raw)
		if err != nil || len(unmoved) > 0 {
			return
		}
		again, unmoved, err := back.acl(out)
		if err != nil || len(unmoved) > 0 || !bytes.Equal(again, raw) {
			t.Fatalf("acl %x -> %x -> %x (%v, %v)", raw, out, again, unmoved, err)
		}
	})
}
