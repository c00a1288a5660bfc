package cli

import (
	"encoding/hex"
	"errors"
	"io"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nscap/nscap/xattrfmt"
)

func stringsReader(s string) io.Reader { return strings.NewReader(s) }

func itoa(i int) string { return strconv.Itoa(i) }

// rawHex returns the security.capability of path as "0x..." (as getfattr
// -e hex prints it), or "" when it has none. It reads the xattr with the
// raw syscall, independent of fcaps.
func rawHex(tb testing.TB, path string) string {
	tb.Helper()
	buf := make([]byte, 64)
	n, err := syscall.Getxattr(path, "security.capability", buf)
	if errors.Is(err, syscall.ENODATA) {
		return ""
	}
	if err != nil {
		tb.Fatalf("getxattr %s: %v", path, err)
	}
	return "0x" + hex.EncodeToString(buf[:n])
}

func parseErr(text string) string {
	_, err := xattrfmt.ParseFileText(text)
	if err == nil {
		return ""
	}
	return strings.TrimPrefix(err.Error(), "xattrfmt: ") // as the user reads it
}
