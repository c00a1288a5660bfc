package userns_test

import (
	"fmt"

	"github.com/nscap/nscap/userns"
)

// A container runs with uid map 0:100000:65536; inside it, a nested
// container maps its uids 0-999 onto the container's uids 1000-1999.
// Composing the two gives the nested container's map in host uids: its
// root is host uid 101000, the rootid of capabilities honoured there.
func ExampleCompose() {
	outer, err := userns.ParseMap("0:100000:65536")
	if err != nil {
		panic(err)
	}
	inner, err := userns.ParseMap("0:1000:1000")
	if err != nil {
		panic(err)
	}
	nested, err := userns.Compose(inner, outer)
	if err != nil {
		panic(err)
	}
	root, _ := nested.ToHost(0)
	fmt.Println(nested, root)
	_, err = nested.ToHost(1000)
	fmt.Println(err)
	// Output:
	// 0:101000:1000 101000
	// userns: namespace id 1000 not mapped by 0:101000:1000
}

func ExampleParseMap() {
	_, err := userns.ParseMap("0:100000:65536,0:200000:1")
	fmt.Println(err)
	// Output:
	// userns: extents overlap: extent 1 "0:200000:1": inside range overlaps extent 0 "0:100000:65536"
}
