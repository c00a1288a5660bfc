package restorer

import "testing"

func TestBufPool(t *testing.T) {
	for _, n := range []int64{0, 1, 511, 512, 513, 4096, 70000, restoreSmallFile - 1, restoreSmallFile} {
		b := getBuf(n)
		if int64(len(b)) != n || (n > 0 && (cap(b)&(cap(b)-1) != 0 || cap(b) < 512 || int64(cap(b)) < n)) {
			t.Errorf("getBuf(%d): len %d cap %d", n, len(b), cap(b))
		}
		putBuf(b)
		if b2 := getBuf(n); int64(len(b2)) != n {
			t.Errorf("getBuf(%d) after putBuf: len %d", n, len(b2))
		}
	}
}
