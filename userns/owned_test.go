package userns

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestOwnedIDsCheck(t *testing.T) {
	t.Parallel()
	owned := OwnedIDs{Kind: "uid", Self: 1000, File: "/etc/subuid", Ranges: []SubIDRange{{400000, 65536}, {600000, 10}}}
	none := OwnedIDs{Kind: "gid", Self: 1000, File: "/etc/subgid", Err: fs.ErrNotExist}
	tests := []struct {
		o       OwnedIDs
		m       string
		bad     string // substring of the error; "" means allowed
		noSubID bool
	}{
		{owned, "0:1000:1,1:400000:65536", "", false},
		{owned, "0:1000:1,1:600000:10", "", false},
		{owned, "0:1000:2", `extent 0 "0:1000:2": host uids 1000-1001 are not the caller's own id 1000 nor inside one of its ranges in /etc/subuid (400000-465535, 600000-600009)`, false},
		{owned, "0:1000:1,1:400000:65537", "host uids 400000-465536", false},
		{owned, "0:465530:20", "host uids 465530-465549", false},
		{none, "0:1000:1", "", false},
		{none, "0:1000:1,1:400000:5", "host gids 400000-400004 are not the caller's own id 1000, and it has no range in /etc/subgid", true},
	}
	for _, tc := range tests {
		m, err := ParseMap(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		err = tc.o.Check(m)
		if tc.bad == "" {
			if err != nil {
				t.Errorf("Check(%s) = %v, want nil", tc.m, err)
			}
			continue
		}
		var me *MapError
		if err == nil || !strings.Contains(err.Error(), tc.bad) || !errors.Is(err, ErrUnmapped) || !errors.As(err, &me) {
			t.Errorf("Check(%s) = %v, want a *MapError matching ErrUnmapped containing %q", tc.m, err, tc.bad)
		}
		if tc.noSubID != errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Check(%s) = %v: matches the lookup error %v, want %v", tc.m, err, !tc.noSubID, tc.noSubID)
		}
	}
	if !none.None() || owned.None() {
		t.Errorf("None() wrong")
	}
}
