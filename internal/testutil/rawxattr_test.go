package testutil

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// TestRawFS plants, on every kernel, the values setxattr refuses, and
// valid ones, and checks what the kernel then shows of each.
func TestRawFS(t *testing.T) {
	r := NewRawFS(t)
	if entries, err := os.ReadDir(r.Dir); err != nil || len(entries) != 0 {
		t.Errorf("ReadDir(Dir) = %v, %v; want an empty directory", entries, err)
	}
	v2 := []byte{0, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	v2e := []byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	v3 := []byte{1, 0, 0, 3, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa0, 0x86, 1, 0}
	tests := []struct {
		name  string
		value []byte
		valid bool // getxattr returns it as planted
	}{
		{"empty", []byte{}, false},
		{"v1", []byte{1, 0, 0, 1, 0, 0x20, 0, 0, 0, 0, 0, 0}, false},
		{"v2-stray-flags", []byte{1, 1, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false},
		{"v3-no-effective-stray-flag", []byte{0x80, 0, 0, 3, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa0, 0x86, 1, 0}, false},
		{"truncated", []byte{1, 0, 0}, false},
		{"v2-truncated", v2e[:16], false},
		{"v3-size-of-v2", append([]byte{1, 0, 0, 3}, v2e[4:]...), false},
		{"revision-4", []byte{1, 0, 0, 4, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, false},
		{"v2", v2, true},
		{"v2-effective", v2e, true},
		{"v3", v3, true},
	}
	values := map[string][]byte{}
	for _, tc := range tests {
		p := filepath.Join(r.Dir, "sub", tc.name)
		NoErr(t, os.MkdirAll(filepath.Dir(p), 0o755))
		NoErr(t, os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755))
		values[p] = tc.value
	}
	// What this kernel does with the empty value through setxattr, for
	// the log: refused (EINVAL) since 6.18, stored before.
	probe := filepath.Join(r.Dir, "probe")
	NoErr(t, os.WriteFile(probe, nil, 0o644))
	t.Logf("setxattr(%s, empty value) on this kernel: %v", CapAttr, syscall.Setxattr(probe, CapAttr, nil, 0))

	NoErr(t, r.Plant(CapAttr, values))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(r.Dir, "sub", tc.name)
			if !slices.Contains(listxattr(t, p), CapAttr) {
				t.Errorf("listxattr(%s) lacks %s", p, CapAttr)
			}
			buf := make([]byte, 64)
			n, err := syscall.Getxattr(p, CapAttr, buf)
			switch {
			case tc.valid && (err != nil || string(buf[:n]) != string(tc.value)):
				t.Errorf("getxattr = %x, %v; want %x", buf[:max(n, 0)], err, tc.value)
			case !tc.valid && !errors.Is(err, syscall.EINVAL):
				t.Errorf("getxattr = %x, %v; want EINVAL", buf[:max(n, 0)], err)
			}
		})
	}

	// A second Plant replaces values and keeps the rest of the tree.
	empty := filepath.Join(r.Dir, "sub", "empty")
	NoErr(t, r.Plant(CapAttr, map[string][]byte{empty: v2}))
	buf := make([]byte, 64)
	if n, err := syscall.Getxattr(empty, CapAttr, buf); err != nil || string(buf[:n]) != string(v2) {
		t.Errorf("after a second Plant: getxattr = %x, %v; want %x", buf[:max(n, 0)], err, v2)
	}
	if n, err := syscall.Getxattr(filepath.Join(r.Dir, "sub", "v3"), CapAttr, buf); err != nil || string(buf[:n]) != string(v3) {
		t.Errorf("after a second Plant: v3 = %x, %v; want %x", buf[:max(n, 0)], err, v3)
	}

	// Files elsewhere are refused.
	outside := filepath.Join(t.TempDir(), "f")
	NoErr(t, os.WriteFile(outside, nil, 0o644))
	if err := r.Plant(CapAttr, map[string][]byte{outside: v2}); err == nil || !strings.Contains(err.Error(), "not on the raw filesystem") {
		t.Errorf("Plant outside Dir: %v, want an error", err)
	}
}

func listxattr(tb testing.TB, p string) []string {
	tb.Helper()
	buf := make([]byte, 1024)
	n, err := syscall.Listxattr(p, buf)
	NoErr(tb, err)
	return strings.Split(strings.TrimSuffix(string(buf[:n]), "\x00"), "\x00")
}
