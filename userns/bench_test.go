package userns

import (
	"fmt"
	"testing"
)

func benchMaps(b *testing.B) (Map, Map) {
	b.Helper()
	var in, out []Extent
	for i := range MaxExtents {
		in = append(in, Extent{NsID: uint32(1000 * i), HostID: uint32(1000*i + 500), Count: 1000})
		out = append(out, Extent{NsID: uint32(1000 * i), HostID: uint32(10000000 + 1000*i), Count: 1000})
	}
	im, err := NewMap(in[:170])
	if err != nil {
		b.Fatal(err)
	}
	om, err := NewMap(out)
	if err != nil {
		b.Fatal(err)
	}
	return im, om
}

func BenchmarkCompose(b *testing.B) {
	im, om := benchMaps(b)
	for b.Loop() {
		if _, err := Compose(im, om); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkToHost(b *testing.B) {
	for _, n := range []int{1, 5, MaxExtents} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			_, om := benchMaps(b)
			m, _ := NewMap(om.Extents()[:n])
			var id uint32
			for b.Loop() {
				_, _ = m.ToHost(id % uint32(1000*n))
				id += 7919
			}
		})
	}
}

func BenchmarkParseMap(b *testing.B) {
	s := manyExtents(MaxExtents, ",", false)
	for b.Loop() {
		if _, err := ParseMap(s); err != nil {
			b.Fatal(err)
		}
	}
}
