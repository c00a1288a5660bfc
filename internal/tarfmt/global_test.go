package tarfmt

import (
	"archive/tar"
	"errors"
	"testing"
)

func TestGlobals(t *testing.T) {
	g := func(comment string) *tar.Header {
		h := &tar.Header{Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"other": "x"}}
		if comment != "" {
			h.PAXRecords[CommentRecord] = comment
		}
		return h
	}
	member := &tar.Header{Typeflag: tar.TypeReg, Name: "a"}
	var gl Globals
	for i, step := range []struct {
		h      *tar.Header
		global bool
		err    error
		want   string
	}{
		{g("first"), true, nil, "first"},
		{g(""), true, nil, "first"},
		{g("second"), true, nil, "second"}, // the last before the first member
		{member, false, nil, "second"},
		{g(""), true, nil, "second"}, // late, no comment: ignored
		{g("late"), true, ErrLateGlobal, "second"},
		{member, false, nil, "second"},
	} {
		global, err := gl.Take(step.h)
		if global != step.global || !errors.Is(err, step.err) || (step.err == nil && err != nil) || gl.Comment != step.want {
			t.Errorf("step %d: Take = %v, %v; Comment %q; want %v, %v, %q", i, global, err, gl.Comment, step.global, step.err, step.want)
		}
	}
}
