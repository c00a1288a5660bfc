package xattrfmt

import (
	"encoding/binary"
	"fmt"
)

// Fields of magic_etc (include/uapi/linux/capability.h).
const (
	revisionMask   = 0xff000000 // VFS_CAP_REVISION_MASK
	revisionShift  = 24
	flagsMask      = 0x00ffffff // VFS_CAP_FLAGS_MASK
	flagsEffective = 0x000001   // VFS_CAP_FLAGS_EFFECTIVE
)

// Size returns the encoded size of revision r (12, 20 or 24), or 0 for an
// unknown revision.
func (r Revision) Size() int {
	switch r {
	case Revision1:
		return SizeV1
	case Revision2:
		return SizeV2
	case Revision3:
		return SizeV3
	}
	return 0
}

// Decode parses a security.capability value.
//
// It accepts what the kernel's exec path (get_vfs_caps_from_disk) accepts,
// minus stray flags, which the read path refuses: revision 1 (12 bytes), 2
// (20 bytes) and 3 (24 bytes). Capability bits above [LastCap] are kept
// verbatim. On error the result is the zero FileCaps and the error is a
// [*DecodeError]; the first rule broken, in this order, is reported:
//
//  1. [ErrEmpty]: zero bytes;
//  2. [ErrTruncated]: fewer than the 4 bytes of magic_etc;
//  3. [ErrBadRevision]: revision byte not 1, 2 or 3;
//  4. [ErrTruncated] or [ErrTrailingData] (both [ErrSize]): length not the
//     revision's size;
//  5. [ErrBadFlags]: flag bits other than the effective bit.
func Decode(b []byte) (FileCaps, error) {
	if len(b) == 0 {
		return FileCaps{}, &DecodeError{Reason: ErrEmpty, Msg: "empty value (a capability value has at least a 4-byte header)"}
	}
	if len(b) < 4 {
		return FileCaps{}, &DecodeError{
			Offset: len(b), Reason: ErrTruncated,
			Msg: fmt.Sprintf("value of %d bytes is shorter than the 4-byte magic_etc header", len(b)),
		}
	}
	magic := binary.LittleEndian.Uint32(b)
	rev := Revision(magic >> revisionShift)
	size := rev.Size()
	if size == 0 {
		return FileCaps{}, &DecodeError{
			Offset: 3, Reason: ErrBadRevision,
			Msg: fmt.Sprintf("unknown revision %d in magic_etc %#08x (want 1, 2 or 3)", rev, magic),
		}
	}
	switch {
	case len(b) < size:
		return FileCaps{}, &DecodeError{
			Offset: len(b), Reason: ErrTruncated,
			Msg: fmt.Sprintf("revision %d value must be %d bytes, got %d", rev, size, len(b)),
		}
	case len(b) > size:
		return FileCaps{}, &DecodeError{
			Offset: size, Reason: ErrTrailingData,
			Msg: fmt.Sprintf("revision %d value must be %d bytes, got %d (%d trailing bytes)", rev, size, len(b), len(b)-size),
		}
	}
	if stray := magic & flagsMask &^ flagsEffective; stray != 0 {
		return FileCaps{}, &DecodeError{
			Offset: 0, Reason: ErrBadFlags,
			Msg: fmt.Sprintf("unknown flags %#06x in magic_etc %#08x (only 0x000001, effective, is defined)", stray, magic),
		}
	}
	c := FileCaps{
		Revision:    rev,
		Effective:   magic&flagsEffective != 0,
		Permitted:   CapSet(binary.LittleEndian.Uint32(b[4:])),
		Inheritable: CapSet(binary.LittleEndian.Uint32(b[8:])),
	}
	if rev >= Revision2 {
		c.Permitted |= CapSet(binary.LittleEndian.Uint32(b[12:])) << 32
		c.Inheritable |= CapSet(binary.LittleEndian.Uint32(b[16:])) << 32
	}
	if rev == Revision3 {
		c.RootID = binary.LittleEndian.Uint32(b[20:])
	}
	return c, nil
}

// Encode returns the value of c as the kernel stores it and libcap writes
// it: little-endian magic_etc (revision<<24, plus 0x000001 when Effective),
// then the (permitted, inheritable) word pairs, then the rootid for
// revision 3. Revision 1 gives 12 bytes, 2 gives 20, 3 gives 24.
//
// It fails with [ErrBadRevision] for another revision, with [ErrRange] for
// capabilities above 31 in revision 1, and with [ErrRootID] for a non-zero
// RootID outside revision 3. Encode(Decode(b)) == b for every b Decode
// accepts.
func Encode(c FileCaps) ([]byte, error) {
	size := c.Revision.Size()
	if size == 0 {
		return nil, fmt.Errorf("%w %d (want 1, 2 or 3)", ErrBadRevision, c.Revision)
	}
	if c.Revision != Revision3 && c.RootID != 0 {
		return nil, fmt.Errorf("%w (revision %d, rootid %d)", ErrRootID, c.Revision, c.RootID)
	}
	if high := (c.Permitted | c.Inheritable) >> 32 << 32; c.Revision == Revision1 && high != 0 {
		return nil, fmt.Errorf("%w: revision 1 holds capabilities 0-31 only, got %s", ErrRange, high)
	}
	magic := uint32(c.Revision) << revisionShift
	if c.Effective {
		magic |= flagsEffective
	}
	b := make([]byte, size)
	binary.LittleEndian.PutUint32(b, magic)
	binary.LittleEndian.PutUint32(b[4:], uint32(c.Permitted))
	binary.LittleEndian.PutUint32(b[8:], uint32(c.Inheritable))
	if c.Revision >= Revision2 {
		binary.LittleEndian.PutUint32(b[12:], uint32(c.Permitted>>32))
		binary.LittleEndian.PutUint32(b[16:], uint32(c.Inheritable>>32))
	}
	if c.Revision == Revision3 {
		binary.LittleEndian.PutUint32(b[20:], c.RootID)
	}
	return b, nil
}

// WithRoot returns c as the caps of the user namespace whose root is
// uid root, in the form the kernel writes them: revision 2 (host-scoped)
// for root 0, revision 3 with RootID root otherwise. The effective bit and
// the capability words are kept, bits above [LastCap] included, so that
// Encode(c.WithRoot(r)) differs from Encode(c) only in the revision and
// the rootid. A revision-1 c gains the upper words, empty.
func (c FileCaps) WithRoot(root uint32) FileCaps {
	c.Revision, c.RootID = Revision2, 0
	if root != 0 {
		c.Revision, c.RootID = Revision3, root
	}
	return c
}

// HasRootID reports whether c carries a rootid, that is whether it is
// revision 3. A revision-3 value with rootid 0 has one.
func (c FileCaps) HasRootID() bool { return c.Revision == Revision3 }

// Caps returns the capability state libcap loads from c (_fcaps_load):
// permitted and inheritable as stored (only capabilities 0-31 for revision
// 1), and an effective set equal to permitted|inheritable when the
// effective bit is set, empty otherwise. The rootid is not part of it.
func (c FileCaps) Caps() Caps {
	p, i := c.Permitted, c.Inheritable
	if c.Revision == Revision1 {
		p &= 0xffffffff
		i &= 0xffffffff
	}
	s := Caps{Permitted: p, Inheritable: i}
	if c.Effective {
		s.Effective = p | i
	}
	return s
}

// String returns the text getcap prints for a file with these caps, after
// the path: libcap's cap_to_text of [FileCaps.Caps], such as
// "cap_net_raw=ep". It never includes the rootid; getcap -n appends
// " [rootid=N]" itself, for N neither 0 nor 0xffffffff, printing N as a
// signed int (0xfffffffe is "-2").
func (c FileCaps) String() string { return c.Caps().String() }
