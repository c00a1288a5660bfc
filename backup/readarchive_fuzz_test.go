package backup

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"

	"github.com/nscap/nscap/internal/tarfmt"
	"github.com/nscap/nscap/userns"
	"github.com/nscap/nscap/xattrfmt"
)

// FuzzReadHeader feeds arbitrary bytes to the archive reader: it must not
// panic, and every entry it hands out must be writable again by
// archive/tar with its xattrs (archive/tar's fuzz rule).
func FuzzReadHeader(f *testing.F) {
	f.Add(makeArchive(f, "nscap-backup/1 uidmap=0:100000:65536", []member{
		{name: "a", data: "x", xattrs: map[string]string{XattrCaps: capsV3(1000)}},
		{name: "l", typ: tar.TypeSymlink, link: "a"},
	}))
	f.Add(makeArchive(f, "", []member{{name: "../x", data: "y", pax: map[string]string{"LIBARCHIVE.xattr.user.a%20b": "aGk="}}}))
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		ar, err := tarfmt.NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		defer ar.Close()
		for range 64 {
			e, err := ar.Next()
			var ee *tarfmt.EntryError
			if errors.As(err, &ee) {
				continue
			}
			if err != nil {
				return
			}
			if _, err := io.Copy(io.Discard, io.LimitReader(ar, 1<<20)); err != nil {
				return
			}
			h := *e.Header
			h.Name = e.Name
			h.Size = 0
			if h.Typeflag != tar.TypeDir && h.Typeflag != tar.TypeSymlink && h.Typeflag != tar.TypeLink {
				h.Typeflag = tar.TypeReg
			}
			h.PAXRecords = map[string]string{}
			for k, v := range e.Xattrs {
				h.PAXRecords[tarfmt.SchilyXattrPrefix+k] = string(v)
			}
			h.Format = tar.FormatPAX
			tw := tar.NewWriter(io.Discard)
			if err := tw.WriteHeader(&h); err != nil {
				// Only what pax cannot carry (NUL in a record) may fail.
				if !bytes.Contains([]byte(h.Name+h.Linkname), []byte{0}) && !hasNUL(e.Xattrs) {
					t.Fatalf("entry read back is not writable: %v (%+v)", err, h)
				}
			}
		}
	})
}

func hasNUL(x map[string][]byte) bool {
	for k, v := range x {
		if bytes.IndexByte([]byte(k), 0) >= 0 || bytes.IndexByte(v, 0) >= 0 {
			return true
		}
	}
	return false
}

// FuzzACLFromText feeds arbitrary text to the parser of bsdtar's and GNU
// tar's ACL records: no panic; a value it returns is a valid ACL xattr
// with its entries in the kernel's order, and xattrfmt.ACLMode never panics on it.
func FuzzACLFromText(f *testing.F) {
	f.Add("user::rw-,group::r--,other::r--,user:daemon:rw-:1,user:100033:r--,group:bin:r--:2,group:100044:rw-,mask::rw-")
	f.Add("user::rwx\nuser:100035:rwx\ngroup::r-x\nmask::rwx\nother::r-x\n")
	f.Add("u::rw-, g::r-- #effective, o:r--")
	f.Add("user::rw-,user:daemon:rw-,group::r--,mask::rw-,other::r--")
	f.Add("default:user::rwx")
	f.Fuzz(func(t *testing.T, text string) {
		raw, _, err := xattrfmt.ParseACLText(text)
		if err != nil {
			return
		}
		if _, err := ACLToArchive(raw, userns.Map{}, userns.Map{}); err != nil {
			t.Fatalf("xattrfmt.ParseACLText(%q) = %x, not a valid ACL: %v", text, raw, err)
		}
		prev := uint64(0)
		for off := xattrfmt.ACLHeaderSize; off < len(raw); off += xattrfmt.ACLEntrySize {
			k := uint64(binary.LittleEndian.Uint16(raw[off:]))<<32 | uint64(binary.LittleEndian.Uint32(raw[off+4:]))
			if k <= prev {
				t.Fatalf("xattrfmt.ParseACLText(%q): entries out of order: %x", text, raw)
			}
			prev = k
		}
		_ = xattrfmt.ACLMode(raw, 0o4755)
	})
}
