package fcaps

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/nscap/nscap/internal/tarfmt"
)

// layerFile is a file of the merged image filesystem.
type layerFile struct {
	mode     fs.FileMode
	uid, gid uint32
	raw      []byte // security.capability, nil when none
	hasCaps  bool
	head     []byte // first bytes, for binfmt_misc
	layer    int    // index of the layer that wrote it
}

// mergedFS is the filesystem the layers make, applied one by one.
type mergedFS struct {
	files  map[string]*layerFile
	layers []ImageLayer
}

// whiteouts are the deletions a layer makes of lower layers' files.
type whiteouts struct {
	gone   map[string]bool // the path and everything below it
	opaque map[string]bool // everything below the directory
}

// covered reports whether p, a file of a lower layer, is deleted.
func (w *whiteouts) covered(p string) bool {
	if w.gone[p] || w.opaque["."] {
		return true
	}
	for d := p; d != "."; {
		d = path.Dir(d)
		if w.gone[d] || w.opaque[d] {
			return true
		}
	}
	return false
}

// apply reads layer li's tar from r and merges it: files replace lower
// ones, ".wh.NAME" deletes NAME (and below) of lower layers,
// ".wh..wh..opq" the lower contents of its directory, and a non-directory
// replacing a directory its lower contents (OCI image-spec, layer.md).
func (m *mergedFS) apply(ctx context.Context, r io.Reader, li int, binfmt bool, reportErr func(string, error) error, display func(string) string) error {
	ar, err := tarfmt.NewReader(r)
	if err != nil {
		return badArchive(err)
	}
	defer ar.Close()
	w := whiteouts{gone: map[string]bool{}, opaque: map[string]bool{}}
	for e, err := range ar.Entries(ctx) {
		if ee, ok := errors.AsType[*tarfmt.EntryError](err); ok {
			if e != nil && e.Name != "" {
				ee.Name = e.Name
			}
			if err := reportErr(display(ee.Name), fmt.Errorf("%w: %w", ErrBadArchive, ee.Err)); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			return badArchive(err)
		}
		h, name := e.Header, e.Name
		dir, base := path.Split(name)
		dir = path.Clean(dir)
		if base == ".wh..wh..opq" {
			w.opaque[dir] = true
			continue
		}
		if target, ok := strings.CutPrefix(base, ".wh."); ok {
			w.gone[path.Join(dir, target)] = true
			continue
		}
		f := &layerFile{mode: h.FileInfo().Mode(), uid: uint32(h.Uid), gid: uint32(h.Gid), layer: li}
		if raw, ok := e.Xattrs[AttrName]; ok && h.Typeflag != tar.TypeLink {
			if raw == nil {
				raw = []byte{}
			}
			f.raw, f.hasCaps = raw, true
			if binfmt && h.Typeflag == tar.TypeReg {
				f.head = readMemberHead(ar)
			}
		}
		if old, ok := m.files[name]; ok && old.mode.IsDir() && !f.mode.IsDir() {
			w.gone[name] = true // its lower contents go (itself is replaced below)
		}
		if old, ok := m.files[name]; ok && old.mode.IsDir() && f.mode.IsDir() && !f.hasCaps {
			// A directory entry over a lower directory updates its metadata.
			old.mode, old.uid, old.gid, old.layer = f.mode, f.uid, f.gid, li
			continue
		}
		m.files[name] = f
	}
	if len(w.gone) == 0 && len(w.opaque) == 0 {
		return nil
	}
	for p, f := range m.files {
		if f.layer < li && w.covered(p) {
			delete(m.files, p)
		}
	}
	return nil
}

// AuditImage audits the container image img, named name in findings: for
// each manifest, its layers are read in order (gzip, zstd or plain, each
// blob checked against its digest, or the uncompressed tar against the
// config's diff id) and merged with their whiteouts, and every file of
// the merged filesystem that carries a security.capability is audited as
// a namespace-relative archive member (owners are container ids, a
// revision-2 value belongs to the container root). A file an upper layer
// deleted or replaced is not audited. Each finding's Layer is the digest
// of the layer that wrote the file, and a revision-3 value with a non-zero
// rootid gets [RuleHostRootID]: the rootid is a host uid of the machine
// that built the layer.
//
// Findings are named "NAME:PATH", or "NAME@IMAGE:PATH" when the image holds
// several manifests; their Root is name (with "@IMAGE") and their Rel the
// path. A damaged layer stops the audit of its manifest with an error
// wrapping [ErrBadArchive], after the findings of the layers below it.
func AuditImage(ctx context.Context, img *Image, name string, opts AuditOptions, fn func(Finding) error) error {
	a := NewAuditor(opts)
	var firstErr error
	for _, im := range img.Manifests {
		root := name
		if len(img.Manifests) > 1 {
			root = name + "@" + im.Name
		}
		if err := a.auditManifest(ctx, img, im, root, fn); err != nil {
			var stop stopError
			if errors.As(err, &stop) {
				return stop.err
			}
			if firstErr == nil {
				firstErr = err
			}
		}
	}
	return firstErr
}

// stopError is an error of fn or opts.Error, which ends the audit.
type stopError struct{ err error }

func (s stopError) Error() string { return s.err.Error() }

func (a *Auditor) auditManifest(ctx context.Context, img *Image, im ImageManifest, root string, fn func(Finding) error) error {
	display := func(p string) string { return root + ":" + p }
	m := &mergedFS{files: map[string]*layerFile{}, layers: im.Layers}
	reportErr := func(p string, err error) error {
		if err := a.reportError(p, err); err != nil {
			return stopError{err}
		}
		return nil
	}
	var readErr error
	for li, l := range im.Layers {
		if err := a.readLayer(ctx, img, m, li, l, reportErr, display); err != nil {
			var stop stopError
			if errors.As(err, &stop) || ctx.Err() != nil {
				return err
			}
			readErr = fmt.Errorf("read %s layer %d (%s): %w", root, li+1, l.Digest, err)
			break
		}
	}
	names := make([]string, 0, len(m.files))
	for p, f := range m.files {
		if f.hasCaps {
			names = append(names, p)
		}
	}
	slices.Sort(names)
	for _, p := range names {
		f := m.files[p]
		e := Entry{
			Path: display(p), Root: root, Rel: p, Mode: f.mode, UID: f.uid, GID: f.gid, Raw: f.raw,
			Relative: true, Image: true, Layer: im.Layers[f.layer].Digest, Head: f.head,
		}
		for d := p; d != "."; {
			d = path.Dir(d)
			if df, ok := m.files[d]; ok && df.mode.IsDir() {
				e.Dirs = append(e.Dirs, DirInfo{Path: display(d), Mode: df.mode, UID: df.uid, GID: df.gid})
			}
		}
		for _, fd := range a.Check(e) {
			if err := fn(fd); err != nil {
				return stopError{err}
			}
		}
	}
	return readErr
}

func (a *Auditor) readLayer(ctx context.Context, img *Image, m *mergedFS, li int, l ImageLayer, reportErr func(string, error) error, display func(string) string) error {
	blob, err := img.files.open(l.blob)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadArchive, err)
	}
	defer func() { _ = blob.Close() }() // read only
	bd := newDigester(blob, l.blobDigest)
	zr, closeFn, err := tarfmt.Decompress(bd)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrBadArchive, err)
	}
	defer closeFn()
	dd := newDigester(zr, l.diffID)
	if err := m.apply(ctx, dd, li, a.opts.Binfmt != nil, reportErr, display); err != nil {
		return err
	}
	if err := dd.check("the uncompressed layer"); err != nil {
		return err
	}
	return bd.check("the layer blob")
}
