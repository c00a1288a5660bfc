package xattrfmt

import (
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func unhex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

const (
	bitNetRaw   = 13
	bitNetAdmin = 12
	bitSysAdmin = 21
)

// Golden vectors: the v2 ones are what setcap writes (getfattr -e hex, see
// also TestSetcapOracle); v3 as setcap -n writes them (peers.md E.1).
var vectors = []struct {
	name string
	hex  string
	caps FileCaps
	text string
}{
	{
		"v2 cap_net_raw+ep", "01000002 00200000 00000000 00000000 00000000",
		FileCaps{Revision: Revision2, Effective: true, Permitted: 1 << bitNetRaw},
		"cap_net_raw=ep",
	},
	{
		"v2 cap_net_raw,cap_net_admin+eip", "01000002 00300000 00300000 00000000 00000000",
		FileCaps{Revision: Revision2, Effective: true, Permitted: 1<<bitNetRaw | 1<<bitNetAdmin, Inheritable: 1<<bitNetRaw | 1<<bitNetAdmin},
		"cap_net_admin,cap_net_raw=eip",
	},
	{
		"v2 empty", "00000002 00000000 00000000 00000000 00000000",
		FileCaps{Revision: Revision2},
		"=",
	},
	{
		"v2 effective bit only", "01000002 00000000 00000000 00000000 00000000",
		FileCaps{Revision: Revision2, Effective: true},
		"=",
	},
	{
		"v2 all=ep", "01000002 ffffffff 00000000 ff010000 00000000",
		FileCaps{Revision: Revision2, Effective: true, Permitted: KnownCaps},
		"=ep",
	},
	{
		"v2 cap_chown=i cap_setuid+p", "00000002 80000000 01000000 00000000 00000000",
		FileCaps{Revision: Revision2, Permitted: 1 << 7, Inheritable: 1},
		"cap_chown=i cap_setuid+p",
	},
	{
		"v2 unknown bits 41-63", "01000002 00000000 00000000 00feffff 00000000",
		FileCaps{Revision: Revision2, Effective: true, Permitted: 0xfffffe00 << 32},
		"= 41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63+ep",
	},
	{
		"v2 all bits", "01000002 ffffffff ffffffff ffffffff ffffffff",
		FileCaps{Revision: Revision2, Effective: true, Permitted: ^CapSet(0), Inheritable: ^CapSet(0)},
		"=eip 41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63+eip",
	},
	{
		"v3 cap_net_raw+ep rootid 100000", "01000003 00200000 00000000 00000000 00000000 a0860100",
		FileCaps{Revision: Revision3, Effective: true, Permitted: 1 << bitNetRaw, RootID: 100000},
		"cap_net_raw=ep",
	},
	{
		"v3 rootid 0", "01000003 00200000 00000000 00000000 00000000 00000000",
		FileCaps{Revision: Revision3, Effective: true, Permitted: 1 << bitNetRaw},
		"cap_net_raw=ep",
	},
	{
		"v3 rootid max", "00000003 00000000 00002000 00000000 00000000 ffffffff",
		FileCaps{Revision: Revision3, Inheritable: 1 << bitSysAdmin, RootID: 0xffffffff},
		"cap_sys_admin=i",
	},
	{
		"v1 cap_net_raw+ep", "01000001 00200000 00000000",
		FileCaps{Revision: Revision1, Effective: true, Permitted: 1 << bitNetRaw},
		"cap_net_raw=ep",
	},
	{
		"v1 cap_setfcap=i", "00000001 00000000 00000080",
		FileCaps{Revision: Revision1, Inheritable: 1 << 31},
		"cap_setfcap=i",
	},
}

func TestDecodeEncodeVectors(t *testing.T) {
	t.Parallel()
	for _, tc := range vectors {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := unhex(t, tc.hex)
			got, err := Decode(b)
			if err != nil {
				t.Fatalf("Decode(%x): %v", b, err)
			}
			if diff := cmp.Diff(tc.caps, got); diff != "" {
				t.Errorf("Decode(%x) mismatch (-want +got):\n%s", b, diff)
			}
			enc, err := Encode(tc.caps)
			if err != nil {
				t.Fatalf("Encode(%+v): %v", tc.caps, err)
			}
			if !cmp.Equal(b, enc) {
				t.Errorf("Encode(%+v) = %x, want %x", tc.caps, enc, b)
			}
			if s := tc.caps.String(); s != tc.text {
				t.Errorf("String() = %q, want %q", s, tc.text)
			}
			if got.HasRootID() != (tc.caps.Revision == Revision3) {
				t.Errorf("HasRootID() = %v", got.HasRootID())
			}
		})
	}
}

func TestEncodeErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		caps FileCaps
		want error
	}{
		{"revision 0", FileCaps{Permitted: 1}, ErrBadRevision},
		{"revision 4", FileCaps{Revision: 4}, ErrBadRevision},
		{"revision 255", FileCaps{Revision: 255}, ErrBadRevision},
		{"v1 permitted bit 32", FileCaps{Revision: Revision1, Permitted: 1 << 32}, ErrRange},
		{"v1 inheritable bit 63", FileCaps{Revision: Revision1, Inheritable: 1 << 63}, ErrRange},
		{"v2 with rootid", FileCaps{Revision: Revision2, RootID: 1000}, ErrRootID},
		{"v1 with rootid", FileCaps{Revision: Revision1, RootID: 1}, ErrRootID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b, err := Encode(tc.caps)
			if !errors.Is(err, tc.want) || b != nil {
				t.Fatalf("Encode(%+v) = %x, %v; want nil, %v", tc.caps, b, err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "xattrfmt: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

func TestDecodeErrorMessages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		hex    string
		want   error
		offset int
		msg    string
	}{
		{"", ErrEmpty, 0, "xattrfmt: empty value (a capability value has at least a 4-byte header)"},
		{"010000", ErrTruncated, 3, "xattrfmt: value of 3 bytes is shorter than the 4-byte magic_etc header"},
		{"01000004 00200000 00000000 00000000 00000000", ErrBadRevision, 3, "xattrfmt: unknown revision 4 in magic_etc 0x04000001 (want 1, 2 or 3)"},
		{"01000002 00200000 00000000 00000000 00000000 00000000", ErrTrailingData, 20, "xattrfmt: revision 2 value must be 20 bytes, got 24 (4 trailing bytes)"},
		{"01000003 00200000 00000000 00000000 00000000", ErrTruncated, 20, "xattrfmt: revision 3 value must be 24 bytes, got 20"},
		{"01010002 00200000 00000000 00000000 00000000", ErrBadFlags, 0, "xattrfmt: unknown flags 0x000100 in magic_etc 0x02000101 (only 0x000001, effective, is defined)"},
	} {
		b := unhex(t, tc.hex)
		got, err := Decode(b)
		var de *DecodeError
		if !errors.As(err, &de) {
			t.Fatalf("Decode(%x) = %+v, %v; want a *DecodeError", b, got, err)
		}
		if !errors.Is(err, tc.want) || de.Offset != tc.offset || err.Error() != tc.msg {
			t.Errorf("Decode(%x) = %q (reason %v, offset %d); want %q (reason %v, offset %d)", b, err, de.Reason, de.Offset, tc.msg, tc.want, tc.offset)
		}
	}
}

// TestDecodeMalformed feeds every size 0..32 under revision bytes 0-4 and
// 255, with and without the effective flag, and checks the verdict.
func TestDecodeMalformed(t *testing.T) {
	t.Parallel()
	sentinels := []error{ErrEmpty, ErrTruncated, ErrTrailingData, ErrBadRevision, ErrBadFlags}
	for _, rev := range []byte{0, 1, 2, 3, 4, 255} {
		for _, flags := range [][3]byte{{0, 0, 0}, {1, 0, 0}, {2, 0, 0}, {0, 1, 0}, {0x81, 0, 0x80}} {
			for size := 0; size <= 32; size++ {
				full := make([]byte, 32)
				copy(full, flags[:])
				full[3] = rev
				for i := 4; i < 32; i++ {
					full[i] = byte(i * 37)
				}
				b := full[:size]
				var want error
				wantSize := Revision(rev).Size()
				switch {
				case size == 0:
					want = ErrEmpty
				case size < 4:
					want = ErrTruncated
				case wantSize == 0:
					want = ErrBadRevision
				case size < wantSize:
					want = ErrTruncated
				case size > wantSize:
					want = ErrTrailingData
				case flags != [3]byte{} && flags != [3]byte{1, 0, 0}:
					want = ErrBadFlags
				}
				got, err := Decode(b)
				if want == nil {
					if err != nil {
						t.Errorf("Decode(%x): %v, want success", b, err)
					}
					continue
				}
				if got != (FileCaps{}) {
					t.Errorf("Decode(%x) = %+v on error, want zero value", b, got)
				}
				for _, s := range sentinels {
					if errors.Is(err, s) != (s == want) { //nolint:errorlint // comparing two sentinels of a table
						t.Errorf("Decode(%x) = %v; errors.Is(err, %v) = %v", b, err, s, s != want) //nolint:errorlint // comparing two sentinels of a table
					}
				}
				if isSize := want == ErrTruncated || want == ErrTrailingData; errors.Is(err, ErrSize) != isSize { //nolint:errorlint // want is a sentinel of the table
					t.Errorf("Decode(%x) = %v; errors.Is(err, ErrSize) = %v, want %v", b, err, !isSize, isSize)
				}
				if !strings.HasPrefix(err.Error(), "xattrfmt: ") {
					t.Errorf("error %q lacks the package prefix", err)
				}
			}
		}
	}
}

func TestFileCapsCaps(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fc   FileCaps
		want Caps
	}{
		{"not effective", FileCaps{Revision: Revision2, Permitted: 3, Inheritable: 4}, Caps{Permitted: 3, Inheritable: 4}},
		{"effective is p|i", FileCaps{Revision: Revision2, Effective: true, Permitted: 3, Inheritable: 1<<4 | 1<<50}, Caps{Effective: 3 | 1<<4 | 1<<50, Permitted: 3, Inheritable: 1<<4 | 1<<50}},
		{"v1 drops word 1", FileCaps{Revision: Revision1, Effective: true, Permitted: 1 | 1<<40}, Caps{Effective: 1, Permitted: 1}},
		{"v3 rootid not in state", FileCaps{Revision: Revision3, Permitted: 1, RootID: 7}, Caps{Permitted: 1}},
	} {
		if got := tc.fc.Caps(); got != tc.want {
			t.Errorf("%s: %+v.Caps() = %+v, want %+v", tc.name, tc.fc, got, tc.want)
		}
	}
}

// TestWithRoot re-roots values as a backup translates them: only the
// revision and the rootid change, unknown capability bits stay.
func TestWithRoot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		root uint32
		want string
	}{
		{"v2 to v3", "01000002 00200000 00000000 00000000 00000000", 100000, "01000003 00200000 00000000 00000000 00000000 a0860100"},
		{"v3 to v2", "01000003 00200000 00000000 00000000 00000000 a0860100", 0, "01000002 00200000 00000000 00000000 00000000"},
		{"v3 to v3", "00000003 00200000 00000000 00000000 00000000 a0860100", 1000, "00000003 00200000 00000000 00000000 00000000 e8030000"},
		{"unknown bits kept", "01000002 ffffffff ffffffff ffffffff ffffffff", 7, "01000003 ffffffff ffffffff ffffffff ffffffff 07000000"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Decode(unhex(t, tc.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Encode(c.WithRoot(tc.root))
			if err != nil {
				t.Fatal(err)
			}
			if want := unhex(t, tc.want); string(got) != string(want) {
				t.Errorf("Encode(Decode(%s).WithRoot(%d)) = %x, want %x", tc.in, tc.root, got, want)
			}
		})
	}
}
