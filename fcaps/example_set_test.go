package fcaps_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/nscap/nscap/fcaps"
	"github.com/nscap/nscap/xattrfmt"
)

// Set cap_net_raw=ep on a binary, honoured only inside the container
// whose root is host uid 100000 (like setcap -n 100000), then read it back.
// It needs CAP_SETFCAP, so it has no Output to check.
func ExampleSet() {
	c, err := xattrfmt.ParseFileText("cap_net_raw=ep")
	if err != nil {
		log.Fatal(err)
	}
	c.Revision, c.RootID = xattrfmt.Revision3, 100000
	if err := fcaps.Set("/srv/rootfs/usr/bin/ping", c); err != nil {
		switch {
		case errors.Is(err, fcaps.ErrNotRegular):
			log.Fatalf("refused: %v", err) // a symlink, directory, device...
		case errors.Is(err, fcaps.ErrRootIDNotMapped):
			log.Fatalf("run this where uid 100000 is mapped: %v", err)
		}
		log.Fatal(err)
	}
	got, err := fcaps.Get("/srv/rootfs/usr/bin/ping")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s [rootid=%d]\n", got, got.RootID)
}
