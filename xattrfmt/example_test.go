package xattrfmt_test

import (
	"fmt"

	"github.com/nscap/nscap/xattrfmt"
)

func ExampleDecode() {
	// What `setcap -n 100000 cap_net_raw+ep FILE` stores (getfattr -e hex).
	raw := []byte{
		0x01, 0x00, 0x00, 0x03, // magic_etc: revision 3, effective
		0x00, 0x20, 0x00, 0x00, // permitted[0]: bit 13
		0x00, 0x00, 0x00, 0x00, // inheritable[0]
		0x00, 0x00, 0x00, 0x00, // permitted[1]
		0x00, 0x00, 0x00, 0x00, // inheritable[1]
		0xa0, 0x86, 0x01, 0x00, // rootid: 100000
	}
	c, err := xattrfmt.Decode(raw)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(c.String(), c.Revision, c.RootID)

	_, err = xattrfmt.Decode(raw[:20])
	fmt.Println(err)
	// Output:
	// cap_net_raw=ep 3 100000
	// xattrfmt: revision 3 value must be 24 bytes, got 20
}

func ExampleEncode() {
	c, err := xattrfmt.ParseFileText("cap_net_raw+ep")
	if err != nil {
		fmt.Println(err)
		return
	}
	b, _ := xattrfmt.Encode(c)
	fmt.Printf("%x\n", b)

	c.Revision, c.RootID = xattrfmt.Revision3, 100000
	b, _ = xattrfmt.Encode(c)
	fmt.Printf("%x\n", b)
	// Output:
	// 0100000200200000000000000000000000000000
	// 0100000300200000000000000000000000000000a0860100
}

func ExampleParseText() {
	c, _ := xattrfmt.ParseText("cap_net_raw=ep cap_sys_admin=i")
	fmt.Println(c)
	_, err := c.FileCaps()
	fmt.Println(err)
	// Output:
	// cap_sys_admin=i cap_net_raw+ep
	// xattrfmt: effective set must be empty or include all permitted and inheritable capabilities (not effective: cap_sys_admin)
}
