package testutil

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// LayerFile is one member of a generated image layer.
type LayerFile struct {
	Name     string // "usr/bin/ping", "usr/bin/.wh.old", "opt/.wh..wh..opq"
	Dir      bool
	Mode     int64
	UID, GID int
	// Cap is the raw security.capability (SCHILY.xattr record), nil for
	// none.
	Cap []byte
}

// Layer is a generated image layer and how it is compressed: "gzip",
// "zstd" or "" (none).
type Layer struct {
	Compression string
	Files       []LayerFile
}

// Built is one generated layer: its uncompressed tar and diff id, its
// blob (compressed) and digest, and its media type.
type Built struct {
	Tar, Blob            []byte
	DiffID, Digest, Type string
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// BuildLayer writes l as a PAX tar archive, compressed as it says.
func BuildLayer(tb testing.TB, l Layer) Built {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range l.Files {
		h := &tar.Header{Name: f.Name, Mode: f.Mode, Uid: f.UID, Gid: f.GID, Format: tar.FormatPAX, Typeflag: tar.TypeReg}
		if f.Dir {
			h.Typeflag, h.Name = tar.TypeDir, f.Name+"/"
		}
		if f.Cap != nil {
			h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": string(f.Cap)}
		}
		body := []byte{}
		if !f.Dir {
			body = []byte("#!/bin/sh\n# " + f.Name + "\n")
			h.Size = int64(len(body))
		}
		NoErr(tb, tw.WriteHeader(h))
		WriteOK(tb)(tw.Write(body))
	}
	NoErr(tb, tw.Close())
	b := Built{Tar: buf.Bytes(), DiffID: sha(buf.Bytes())}
	switch l.Compression {
	case "gzip":
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		WriteOK(tb)(zw.Write(b.Tar))
		NoErr(tb, zw.Close())
		b.Blob, b.Type = z.Bytes(), "application/vnd.oci.image.layer.v1.tar+gzip"
	case "zstd":
		var z bytes.Buffer
		zw, err := zstd.NewWriter(&z)
		NoErr(tb, err)
		WriteOK(tb)(zw.Write(b.Tar))
		NoErr(tb, zw.Close())
		b.Blob, b.Type = z.Bytes(), "application/vnd.oci.image.layer.v1.tar+zstd"
	default:
		b.Blob, b.Type = b.Tar, "application/vnd.oci.image.layer.v1.tar"
	}
	b.Digest = sha(b.Blob)
	return b
}

func writeBlob(tb testing.TB, dir string, data []byte) string {
	tb.Helper()
	d := sha(data)
	p := filepath.Join(dir, "blobs", "sha256", d[len("sha256:"):])
	NoErr(tb, os.MkdirAll(filepath.Dir(p), 0o755))
	NoErr(tb, os.WriteFile(p, data, 0o644))
	return d
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	NoErr(tb, err)
	return b
}

// imageConfig returns an image config JSON with the layers' diff ids.
func imageConfig(tb testing.TB, layers []Built) []byte {
	var ids []string
	for _, l := range layers {
		ids = append(ids, l.DiffID)
	}
	return mustJSON(tb, map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": ids},
	})
}

// WriteOCILayout writes an OCI image layout of the layers at dir (created)
// with one manifest, named ref, and returns the layers as built.
func WriteOCILayout(tb testing.TB, dir, ref string, layers []Layer) []Built {
	tb.Helper()
	NoErr(tb, os.MkdirAll(dir, 0o755))
	var built []Built
	var descs []map[string]any
	for _, l := range layers {
		b := BuildLayer(tb, l)
		writeBlob(tb, dir, b.Blob)
		built = append(built, b)
		descs = append(descs, map[string]any{"mediaType": b.Type, "digest": b.Digest, "size": len(b.Blob)})
	}
	cfg := imageConfig(tb, built)
	cfgDigest := writeBlob(tb, dir, cfg)
	man := mustJSON(tb, map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfgDigest, "size": len(cfg)},
		"layers": descs,
	})
	manDigest := writeBlob(tb, dir, man)
	idx := mustJSON(tb, map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []map[string]any{{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manDigest, "size": len(man),
			"annotations": map[string]string{"org.opencontainers.image.ref.name": ref},
			"platform":    map[string]string{"os": "linux", "architecture": "amd64"},
		}},
	})
	NoErr(tb, os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644))
	NoErr(tb, os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644))
	return built
}

// WriteDockerArchive writes a docker save style tarball at path: for each
// layer ID/layer.tar (uncompressed, as docker save writes them), the
// image config, and manifest.json naming them with the tag.
func WriteDockerArchive(tb testing.TB, path, tag string, layers []Layer) []Built {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) {
		NoErr(tb, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}))
		WriteOK(tb)(tw.Write(data))
	}
	var built []Built
	var names []string
	for i, l := range layers {
		l.Compression = ""
		b := BuildLayer(tb, l)
		built = append(built, b)
		id := fmt.Sprintf("%064x", i+1)
		NoErr(tb, tw.WriteHeader(&tar.Header{Name: id + "/", Mode: 0o755, Typeflag: tar.TypeDir}))
		add(id+"/layer.tar", b.Tar)
		names = append(names, id+"/layer.tar")
	}
	cfg := imageConfig(tb, built)
	cfgName := sha(cfg)[len("sha256:"):] + ".json"
	add(cfgName, cfg)
	add("manifest.json", mustJSON(tb, []map[string]any{{"Config": cfgName, "RepoTags": []string{tag}, "Layers": names}}))
	NoErr(tb, tw.Close())
	NoErr(tb, os.WriteFile(path, buf.Bytes(), 0o644))
	return built
}

// TarDir writes a tar archive of the files under dir at path (an OCI
// archive when dir is an OCI layout).
func TarDir(tb testing.TB, dir, path string) {
	tb.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	NoErr(tb, tw.AddFS(os.DirFS(dir)))
	NoErr(tb, tw.Close())
	NoErr(tb, os.WriteFile(path, buf.Bytes(), 0o644))
}
