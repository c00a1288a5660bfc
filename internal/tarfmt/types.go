package tarfmt

import "archive/tar"

// memberTypes names the member types nscap restores, in the words of its
// messages and in the short words of `nscap list` (its Type field).
var memberTypes = []struct {
	flag        byte
	name, short string
}{
	{tar.TypeDir, "directory", "dir"},
	{tar.TypeSymlink, "symlink", "symlink"},
	{tar.TypeLink, "hardlink", "hardlink"},
	{tar.TypeFifo, "fifo", "fifo"},
	{tar.TypeChar, "character device", "char"},
	{tar.TypeBlock, "block device", "block"},
}

// TypeName names the member type t for a message ("regular file",
// "directory", "character device", ...). Every other type is a regular
// file (archive/tar reads the old '\x00' one as TypeReg).
func TypeName(t byte) string {
	for _, m := range memberTypes {
		if m.flag == t {
			return m.name
		}
	}
	return "regular file"
}

// TypeWord is the short word of member type t ("file", "dir", "char",
// ...), as `nscap list` shows it.
func TypeWord(t byte) string {
	for _, m := range memberTypes {
		if m.flag == t {
			return m.short
		}
	}
	return "file"
}
