package tarfmt

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/nscap/nscap/internal/testutil"
)

// tarOf returns an archive of one member holding data.
func tarOf(tb testing.TB, format tar.Format, data string) []byte {
	tb.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	if err := tw.WriteHeader(&tar.Header{Name: "f", Mode: 0o644, Size: int64(len(data)), Format: format}); err != nil {
		tb.Fatal(err)
	}
	if _, err := io.WriteString(tw, data); err != nil {
		tb.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func gzipOf(tb testing.TB, data []byte) []byte {
	tb.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

func zstdOf(tb testing.TB, data []byte, opts ...zstd.EOption) []byte {
	tb.Helper()
	var b bytes.Buffer
	zw, err := zstd.NewWriter(&b, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := zw.Write(data); err != nil {
		tb.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// readAll decompresses in with Decompress and reads it all.
func readAll(in []byte) ([]byte, error) {
	r, closeFn, err := Decompress(bytes.NewReader(in))
	if err != nil {
		return nil, err
	}
	defer closeFn()
	return io.ReadAll(r)
}

func TestDecompress(t *testing.T) {
	t.Parallel()
	plain := tarOf(t, tar.FormatPAX, "hello")
	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{"plain", plain, plain},
		{"empty", nil, []byte{}},
		{"shorter than a magic number", []byte{0x28, 0xb5}, []byte{0x28, 0xb5}},
		{"gzip", gzipOf(t, plain), plain},
		{"gzip multi-member", append(gzipOf(t, []byte("ab")), gzipOf(t, []byte("cd"))...), []byte("abcd")},
		{"zstd", zstdOf(t, plain), plain},
		{"zstd two frames", append(zstdOf(t, []byte("ab")), zstdOf(t, []byte("cd"))...), []byte("abcd")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := readAll(tc.in)
			if err != nil {
				t.Fatalf("Decompress(%x): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Decompress(%x) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestDecompressErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, compression string
		in                []byte
	}{
		{"gzip junk", "gzip", []byte{0x1f, 0x8b, 8, 0, 1, 2, 3}},
		{"gzip bad method", "gzip", []byte{0x1f, 0x8b, 9, 0, 0, 0, 0, 0, 0, 0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, _, err := Decompress(bytes.NewReader(tc.in))
			var he *HeaderError
			if !errors.As(err, &he) || he.Compression != tc.compression {
				t.Fatalf("Decompress(%x) error = %v, want a %s HeaderError", tc.in, err, tc.compression)
			}
			if want := "read " + tc.compression + " header: " + he.Err.Error(); err.Error() != want {
				t.Errorf("error text %q, want %q", err, want)
			}
		})
	}
	// A failing reader: its error, as it is, not a HeaderError.
	boom := errors.New("boom")
	_, _, err := Decompress(iotest.ErrReader(boom))
	var he *HeaderError
	if !errors.Is(err, boom) || errors.As(err, &he) {
		t.Errorf("Decompress(failing reader) error = %v, want boom", err)
	}
	// zstd reads its frame header on the first Read.
	if _, err := readAll([]byte{0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff}); err == nil {
		t.Error("zstd junk: no error")
	}
	// A gzip stream cut short: the error comes from Read.
	gz := gzipOf(t, tarOf(t, tar.FormatPAX, "data"))
	if _, err := readAll(gz[:len(gz)-4]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated gzip: %v, want ErrUnexpectedEOF", err)
	}
}

// zstdFrame is a zstd frame of one raw block holding data whose header
// asks for a window of 1<<windowLog bytes (RFC 8878 3.1.1.1).
func zstdFrame(windowLog uint, data string) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, byte(windowLog-10) << 3}
	n := len(data)<<3 | 1 // last block, raw
	b = append(b, byte(n), byte(n>>8), byte(n>>16))
	return append(b, data...)
}

// TestDecompressZstdWindow: a frame whose header asks for a window beyond
// MaxZstdWindow is refused instead of allocated; one within it decodes.
func TestDecompressZstdWindow(t *testing.T) {
	t.Parallel()
	if got, err := readAll(zstdFrame(24, "ok")); err != nil || string(got) != "ok" {
		t.Errorf("window of 16 MiB: %q, %v", got, err)
	}
	for _, log := range []uint{25, 31, 41} {
		if got, err := readAll(zstdFrame(log, "ok")); !errors.Is(err, zstd.ErrWindowSizeExceeded) {
			t.Errorf("window of 1<<%d: %q, %v; want ErrWindowSizeExceeded", log, got, err)
		}
	}
}

func TestSniff(t *testing.T) {
	t.Parallel()
	ustar := tarOf(t, tar.FormatUSTAR, "x")
	gnu := tarOf(t, tar.FormatGNU, "x")
	// A pre-POSIX header: no magic, a valid checksum.
	v7 := bytes.Clone(ustar[:512])
	copy(v7[257:], make([]byte, 512-257))
	copy(v7[148:156], "        ")
	var sum int
	for _, c := range v7 {
		sum += int(c)
	}
	copy(v7[148:156], []byte(octal6(sum)+"\x00 "))
	badSum := bytes.Clone(v7)
	badSum[0] ^= 1
	tests := []struct {
		name string
		head []byte
		want bool
	}{
		{"gzip", []byte{0x1f, 0x8b}, true},
		{"zstd", []byte{0x28, 0xb5, 0x2f, 0xfd, 1}, true},
		{"ustar", ustar[:512], true},
		{"gnu", gnu[:512], true},
		{"pre-POSIX", v7, true},
		{"pre-POSIX with a bad checksum", badSum, false},
		{"zero block", make([]byte, 512), false},
		{"spaces", bytes.Repeat([]byte(" "), 512), false},
		{"short tar", ustar[:511], false},
		{"text", bytes.Repeat([]byte("#!/bin/sh\n"), 52), false},
		{"empty", nil, false},
	}
	for _, tc := range tests {
		if got := Sniff(tc.head); got != tc.want {
			t.Errorf("Sniff(%s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func octal6(n int) string {
	const digits = "01234567"
	b := []byte("000000")
	for i := 5; i >= 0; i-- {
		b[i] = digits[n%8]
		n /= 8
	}
	return string(b)
}

// TestRealTools reads archives made by GNU tar, gzip and zstd (each
// format GNU tar writes, compressed by the real tools) and checks that
// Sniff takes each for an archive and Decompress gives back the tar
// stream.
func TestRealTools(t *testing.T) {
	testutil.RequireTool(t, "tar", "gzip", "zstd", "xz")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("payload"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) []byte {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s %q: %v: %s", name, args, err, stderr.Bytes())
		}
		return out
	}
	for _, format := range []string{"v7", "oldgnu", "gnu", "ustar", "posix"} {
		plain := run("tar", "--format="+format, "-cf", "-", "f")
		for _, c := range []struct {
			name string
			data []byte
		}{
			{"plain", plain},
			{"gzip", pipe(t, dir, plain, "gzip", "-c")},
			{"gzip twice", append(pipe(t, dir, plain[:1024], "gzip", "-c"), pipe(t, dir, plain[1024:], "gzip", "-c")...)},
			{"zstd", pipe(t, dir, plain, "zstd", "-c", "-q")},
			{"zstd -19", pipe(t, dir, plain, "zstd", "-19", "-c", "-q")},
			{"xz", pipe(t, dir, plain, "xz", "-c")},
			{"xz -9e", pipe(t, dir, plain, "xz", "-9e", "-c")},
			{"xz blocks", pipe(t, dir, plain, "xz", "-T2", "--block-size=1KiB", "-c")},
			{"xz twice", append(pipe(t, dir, plain[:1024], "xz", "-c"), pipe(t, dir, plain[1024:], "xz", "-c")...)},
			{"xz crc32", pipe(t, dir, plain, "xz", "--check=crc32", "-c")},
		} {
			head := c.data[:min(len(c.data), SniffLen)]
			if !Sniff(head) {
				t.Errorf("%s %s: Sniff = false", format, c.name)
			}
			got, err := readAll(c.data)
			if err != nil || !bytes.Equal(got, plain) {
				t.Errorf("%s %s: Decompress gave %d bytes (want %d), %v", format, c.name, len(got), len(plain), err)
			}
		}
	}
}

// pipe runs a filter on in.
func pipe(tb testing.TB, dir string, in []byte, name string, args ...string) []byte {
	tb.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(in)
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("%s: %v", name, err)
	}
	return out
}

// TestDecompressXzDict: an xz stream whose first block asks for a larger
// LZMA2 dictionary than MaxXzDict (made by xz itself) is a *HeaderError
// before the decoder allocates it; 64 MiB (xz -9) is read.
func TestDecompressXzDict(t *testing.T) {
	testutil.RequireTool(t, "xz")
	dir := t.TempDir()
	plain := tarOf(t, tar.FormatPAX, "hello")
	big := pipe(t, dir, plain, "xz", "--lzma2=dict=128MiB", "-c")
	_, _, err := Decompress(bytes.NewReader(big))
	var he *HeaderError
	if !errors.As(err, &he) || he.Compression != "xz" {
		t.Fatalf("Decompress(xz, 128 MiB dictionary) = %v, want a *HeaderError", err)
	}
	if got, err := readAll(pipe(t, dir, plain, "xz", "--lzma2=dict=64MiB", "-c")); err != nil || !bytes.Equal(got, plain) {
		t.Errorf("Decompress(xz, 64 MiB dictionary) = %d bytes, %v", len(got), err)
	}
	for _, b := range [][]byte{big[:14], big[:12], append(append([]byte{}, big[:12]...), 0xff)} {
		_ = checkXzDict(b) // truncated headers: left to the decoder, no panic
	}
}
