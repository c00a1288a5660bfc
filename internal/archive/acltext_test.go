package archive

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nscap/nscap/internal/testutil"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

func TestACLFromText(t *testing.T) {
	ent := func(tag, perm uint16, id uint32) string {
		var b bytes.Buffer
		testutil.NoErr(t, binary.Write(&b, binary.LittleEndian, tag))
		testutil.NoErr(t, binary.Write(&b, binary.LittleEndian, perm))
		testutil.NoErr(t, binary.Write(&b, binary.LittleEndian, id))
		return b.String()
	}
	hdr := "\x02\x00\x00\x00"
	tests := []struct {
		name, text string
		want       string
		trivial    bool
		err        string
	}{
		{
			name: "bsdtar with names and ids",
			text: "user::rw-,group::r--,other::r--,user:daemon:rw-:1,user:100033:r--,group:bin:r--:2,group:100044:rw-,mask::rw-",
			want: hdr + ent(xattrfmt.ACLUserObj, 6, xattrfmt.ACLUndefinedID) + ent(xattrfmt.ACLUser, 6, 1) + ent(xattrfmt.ACLUser, 4, 100033) + ent(xattrfmt.ACLGroupObj, 4, xattrfmt.ACLUndefinedID) +
				ent(xattrfmt.ACLGroup, 4, 2) + ent(xattrfmt.ACLGroup, 6, 100044) + ent(xattrfmt.ACLMask, 6, xattrfmt.ACLUndefinedID) + ent(xattrfmt.ACLOther, 4, xattrfmt.ACLUndefinedID),
		},
		{
			name: "GNU tar newlines", text: "user::rwx\nuser:100035:rwx\ngroup::r-x\nmask::rwx\nother::r-x\n",
			want: hdr + ent(xattrfmt.ACLUserObj, 7, xattrfmt.ACLUndefinedID) + ent(xattrfmt.ACLUser, 7, 100035) + ent(xattrfmt.ACLGroupObj, 5, xattrfmt.ACLUndefinedID) + ent(xattrfmt.ACLMask, 7, xattrfmt.ACLUndefinedID) + ent(xattrfmt.ACLOther, 5, xattrfmt.ACLUndefinedID),
		},
		{
			name: "short tags and comments", text: "u::rw-, g::r-- #effective, o:r--",
			want: hdr + ent(xattrfmt.ACLUserObj, 6, xattrfmt.ACLUndefinedID) + ent(xattrfmt.ACLGroupObj, 4, xattrfmt.ACLUndefinedID) + ent(xattrfmt.ACLOther, 4, xattrfmt.ACLUndefinedID), trivial: true,
		},
		{name: "name without id", text: "user::rw-,user:daemon:rw-,group::r--,mask::rw-,other::r--", err: `names "daemon" without a numeric id`},
		{name: "bad id", text: "user::rw-,user:daemon:rw-:x,group::r--,mask::rw-,other::r--", err: `id "x" is not a numeric id`},
		{name: "bad perm", text: "user::rwz,group::r--,other::r--", err: "permission"},
		{name: "bad tag", text: "owner::rw-", err: "unknown tag"},
		{name: "no mask", text: "user::rw-,user:5:r--,group::r--,other::r--", err: "without a mask"},
		{name: "missing other", text: "user::rw-,group::r--", err: "no other::"},
		{name: "duplicate", text: "user::rw-,user:5:r--,user:5:rw-,group::r--,mask::rw-,other::r--", err: "duplicate"},
		{name: "id overflow", text: "user::rw-,user:4294967295:r--,group::r--,mask::rw-,other::r--", err: "without a numeric id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, trivial, err := xattrfmt.ParseACLText(tc.text)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("ParseACLText = %x, %v; want error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]byte(tc.want), got); diff != "" || trivial != tc.trivial {
				t.Errorf("ParseACLText trivial %v (-want +got):\n%s", trivial, diff)
			}
			// The kernel's own encoder agrees: it is what ACLToArchive accepts.
			if _, err := ACLToArchive(got, userns.Map{}, userns.Map{}); err != nil {
				t.Errorf("not a valid ACL value: %v", err)
			}
		})
	}
}
