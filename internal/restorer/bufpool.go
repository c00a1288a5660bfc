package restorer

import (
	"math/bits"
	"sync"
)

// bufPools recycle the buffers of small files, one pool per power of two
// from 512 bytes to restoreSmallFile: a restore passes hundreds of
// megabytes through them, and as fresh allocations they would cost
// garbage collections, zeroed pages and their return to the kernel.
var bufPools [bufClasses]sync.Pool

const (
	bufMinShift = 9
	bufClasses  = 18 - bufMinShift + 1 // 1<<18 == restoreSmallFile
)

// bufClass returns the pool of buffers of at least n bytes (n <=
// restoreSmallFile).
func bufClass(n int64) int {
	return max(bits.Len64(uint64(n-1))-bufMinShift, 0)
}

// getBuf returns a buffer of n bytes, to be given back with putBuf.
func getBuf(n int64) []byte {
	if n == 0 {
		return nil
	}
	c := bufClass(n)
	if b, ok := bufPools[c].Get().(*[]byte); ok {
		return (*b)[:n]
	}
	return make([]byte, n, 1<<(bufMinShift+c))
}

// putBuf gives back a buffer of getBuf.
func putBuf(b []byte) {
	if cap(b) == 0 {
		return
	}
	b = b[:cap(b)]
	bufPools[bufClass(int64(cap(b)))].Put(&b)
}
