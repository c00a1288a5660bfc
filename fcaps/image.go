package fcaps

import (
	"archive/tar"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/nscap/nscap/internal/tarfmt"
)

// ErrNotImage is a path [OpenImage] does not take for a container image.
var ErrNotImage = errors.New("fcaps: not a container image")

// Image kinds.
const (
	// ImageOCILayout is an OCI image layout directory (oci-layout,
	// index.json, blobs/).
	ImageOCILayout = "oci-layout"
	// ImageOCIArchive is a tar archive of an OCI image layout (podman save
	// --format oci-archive, docker save since 25).
	ImageOCIArchive = "oci-archive"
	// ImageDockerArchive is a docker save or podman save tarball
	// (manifest.json, each image's config and layers).
	ImageDockerArchive = "docker-archive"
)

// Image is a container image opened by [OpenImage]: its manifests, each
// with its layers, bottom first. Close releases it.
type Image struct {
	// Kind is one of ImageOCILayout, ImageOCIArchive, ImageDockerArchive.
	Kind string
	// Manifests are the images found (several for a multi-platform index
	// or a docker save of several tags).
	Manifests []ImageManifest

	files  imageFiles
	closer io.Closer
}

// ImageManifest is one image: a name and its layers, bottom first.
type ImageManifest struct {
	// Name is the image's reference (org.opencontainers.image.ref.name,
	// a docker RepoTag), else its manifest digest.
	Name string
	// Platform is "os/arch[/variant]" when the index says it.
	Platform string
	Layers   []ImageLayer
}

// ImageLayer is one layer of an image.
type ImageLayer struct {
	// Digest names the layer in findings: the blob digest of an OCI
	// layer, the diff id (the digest of the uncompressed tar) of a docker
	// archive layer, or its member name when its config lists none.
	Digest string
	// MediaType is the descriptor's, when known.
	MediaType string

	blob string // file name in the image
	// blobDigest and diffID are checked while the layer is read: the
	// digest of the blob as stored and of the uncompressed tar.
	blobDigest, diffID string
}

// Close releases the image.
func (img *Image) Close() error {
	if img.closer == nil {
		return nil
	}
	return img.closer.Close()
}

// imageFiles gives the files of an image by name.
type imageFiles interface {
	open(name string) (io.ReadCloser, error)
}

// rootFiles are the files of a directory, opened below it (os.Root: no
// name, symlink or ".." leads out of it).
type rootFiles struct{ root *os.Root }

func (r rootFiles) open(name string) (io.ReadCloser, error) { return r.root.Open(name) }

// tarFiles are the regular members of an uncompressed tar file, read in
// place.
type tarFiles struct {
	f       *os.File
	members map[string]tarMember
}

type tarMember struct{ off, size int64 }

func (t *tarFiles) open(name string) (io.ReadCloser, error) {
	m, ok := t.members[memberName(name)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return io.NopCloser(io.NewSectionReader(t.f, m.off, m.size)), nil
}

// indexTar lists the regular members of the tar file f with the offset of
// their data. archive/tar seeks over member data (f is an io.Seeker) and
// reads headers block by block, so f's offset after Next is the data's.
func indexTar(f *os.File) (*tarFiles, error) {
	t := &tarFiles{f: f, members: map[string]tarMember{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return t, nil
		}
		if err != nil {
			return nil, err
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		t.members[memberName(h.Name)] = tarMember{off: off, size: h.Size}
	}
}

// OpenImage opens the container image at p: an OCI image layout
// directory (oci-layout and index.json), or an uncompressed tar archive of one, or a
// docker save / podman save tarball (manifest.json). Anything else gives
// an error wrapping [ErrNotImage] (a tree, a layer, a rootfs archive); an
// image whose index or manifests do not decode gives one wrapping
// [ErrBadArchive]. Blobs are named by validated digests only.
func OpenImage(p string) (*Image, error) {
	st, err := os.Lstat(p)
	if err != nil {
		return nil, err
	}
	switch {
	case st.IsDir():
		// Both files: a tree may hold an index.json of its own.
		for _, name := range []string{"oci-layout", "index.json"} {
			if _, err := os.Lstat(path.Join(p, name)); err != nil {
				return nil, fmt.Errorf("%s: %w (no %s)", p, ErrNotImage, name)
			}
		}
		root, err := os.OpenRoot(p)
		if err != nil {
			return nil, err
		}
		img := &Image{Kind: ImageOCILayout, files: rootFiles{root}, closer: root}
		if err := img.readOCI(); err != nil {
			_ = root.Close()
			return nil, fmt.Errorf("read image %s: %w", p, err)
		}
		return img, nil
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("%s: %w", p, ErrNotImage)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	img, err := openImageTar(f)
	if err != nil {
		f.Close()
		if errors.Is(err, ErrNotImage) {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		return nil, fmt.Errorf("read image %s: %w", p, err)
	}
	return img, nil
}

func openImageTar(f *os.File) (*Image, error) {
	head := make([]byte, tarfmt.SniffLen)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, err
	}
	// Compressed data is a layer or a rootfs archive: image archives are
	// written uncompressed (and must be seekable to be read in place).
	if n < tarfmt.SniffLen || !tarfmt.Sniff(head) || head[0] == 0x1f || head[0] == 0x28 {
		return nil, ErrNotImage
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	files, err := indexTar(f)
	if err != nil {
		// A damaged archive: [AuditArchive] reports the damage, after
		// the members before it.
		return nil, fmt.Errorf("%w: %w", ErrNotImage, err)
	}
	img := &Image{files: files, closer: f}
	switch {
	case files.has("manifest.json"):
		img.Kind = ImageDockerArchive
		err = img.readDocker()
	case files.has("index.json") && files.has("oci-layout"):
		img.Kind = ImageOCIArchive
		err = img.readOCI()
	default:
		return nil, ErrNotImage
	}
	if err != nil {
		return nil, err
	}
	return img, nil
}

func (t *tarFiles) has(name string) bool { _, ok := t.members[name]; return ok }

// OCI image-spec structures, the fields the audit reads.
type (
	ociDescriptor struct {
		MediaType   string            `json:"mediaType"`
		Digest      string            `json:"digest"`
		Size        int64             `json:"size"`
		Annotations map[string]string `json:"annotations"`
		Platform    *struct {
			OS           string `json:"os"`
			Architecture string `json:"architecture"`
			Variant      string `json:"variant"`
		} `json:"platform"`
	}
	ociIndexOrManifest struct {
		MediaType string          `json:"mediaType"`
		Manifests []ociDescriptor `json:"manifests"`
		Config    *ociDescriptor  `json:"config"`
		Layers    []ociDescriptor `json:"layers"`
	}
	dockerManifest struct {
		Config   string   `json:"Config"`
		RepoTags []string `json:"RepoTags"`
		Layers   []string `json:"Layers"`
	}
	imageConfig struct {
		RootFS struct {
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
)

// digestRE is a digest the audit reads blobs by: sha256 or sha512 hex.
var digestRE = regexp.MustCompile(`^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$`)

// blobName returns the layout path of a digest's blob.
func blobName(digest string) (string, error) {
	if !digestRE.MatchString(digest) {
		return "", fmt.Errorf("%w: bad digest %q", ErrBadArchive, digest)
	}
	alg, hexs, _ := strings.Cut(digest, ":")
	return "blobs/" + alg + "/" + hexs, nil
}

// maxJSON bounds the index, manifest and config files read whole.
const maxJSON = 16 << 20

func (img *Image) readJSON(name string, v any) error {
	f, err := img.files.open(name)
	if err != nil {
		return err
	}
	defer func() { _ = f.Close() }() // read only
	b, err := io.ReadAll(io.LimitReader(f, maxJSON+1))
	if err != nil {
		return err
	}
	if len(b) > maxJSON {
		return fmt.Errorf("%w: %s is larger than %d bytes", ErrBadArchive, name, maxJSON)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrBadArchive, name, err)
	}
	return nil
}

// readOCI reads index.json and, through nested indexes, every image
// manifest; attestation manifests (docker buildx) are left out.
func (img *Image) readOCI() error {
	var idx ociIndexOrManifest
	if err := img.readJSON("index.json", &idx); err != nil {
		return err
	}
	seen := map[string]bool{}
	var walk func(descs []ociDescriptor, depth int) error
	walk = func(descs []ociDescriptor, depth int) error {
		if depth > 4 {
			return fmt.Errorf("%w: indexes nested too deep", ErrBadArchive)
		}
		for _, d := range descs {
			if seen[d.Digest] || d.Annotations["vnd.docker.reference.type"] == "attestation-manifest" {
				continue
			}
			seen[d.Digest] = true
			name, err := blobName(d.Digest)
			if err != nil {
				return err
			}
			var m ociIndexOrManifest
			if err := img.readJSON(name, &m); err != nil {
				return err
			}
			if len(m.Manifests) > 0 || strings.Contains(m.MediaType, "index") || strings.Contains(m.MediaType, "manifest.list") {
				if err := walk(m.Manifests, depth+1); err != nil {
					return err
				}
				continue
			}
			im := ImageManifest{Name: d.Digest}
			if ref := d.Annotations["org.opencontainers.image.ref.name"]; ref != "" {
				im.Name = ref
			}
			if p := d.Platform; p != nil {
				im.Platform = p.OS + "/" + p.Architecture
				if p.Variant != "" {
					im.Platform += "/" + p.Variant
				}
			}
			var diffIDs []string
			if m.Config != nil {
				var cfg imageConfig
				if cn, err := blobName(m.Config.Digest); err == nil && img.readJSON(cn, &cfg) == nil {
					diffIDs = cfg.RootFS.DiffIDs
				}
			}
			for i, l := range m.Layers {
				if l.MediaType != "" && !strings.Contains(l.MediaType, "tar") {
					continue // not a filesystem layer (an in-toto statement, a signature)
				}
				bn, err := blobName(l.Digest)
				if err != nil {
					return err
				}
				layer := ImageLayer{Digest: l.Digest, MediaType: l.MediaType, blob: bn, blobDigest: l.Digest}
				if len(diffIDs) == len(m.Layers) {
					layer.diffID = diffIDs[i]
				}
				im.Layers = append(im.Layers, layer)
			}
			img.Manifests = append(img.Manifests, im)
		}
		return nil
	}
	return walk(idx.Manifests, 0)
}

// readDocker reads manifest.json of a docker save / podman save tarball.
func (img *Image) readDocker() error {
	var ms []dockerManifest
	if err := img.readJSON("manifest.json", &ms); err != nil {
		// Some other archive with a manifest.json at its top.
		return fmt.Errorf("%w: manifest.json is no docker save manifest: %w", ErrNotImage, err)
	}
	for i, m := range ms {
		im := ImageManifest{Name: fmt.Sprintf("image %d", i)}
		if len(m.RepoTags) > 0 {
			im.Name = m.RepoTags[0]
		}
		var cfg imageConfig
		if m.Config != "" {
			if err := img.readJSON(m.Config, &cfg); err != nil {
				return err
			}
		}
		for j, l := range m.Layers {
			layer := ImageLayer{Digest: l, blob: l}
			if len(cfg.RootFS.DiffIDs) == len(m.Layers) && digestRE.MatchString(cfg.RootFS.DiffIDs[j]) {
				layer.Digest, layer.diffID = cfg.RootFS.DiffIDs[j], cfg.RootFS.DiffIDs[j]
			}
			// docker 25+ stores layers as blobs/sha256/HEX: check those too.
			if alg, hexs, ok := strings.Cut(strings.TrimPrefix(l, "blobs/"), "/"); ok && strings.HasPrefix(l, "blobs/") &&
				digestRE.MatchString(alg+":"+hexs) {
				layer.blobDigest = alg + ":" + hexs
			}
			im.Layers = append(im.Layers, layer)
		}
		img.Manifests = append(img.Manifests, im)
	}
	return nil
}

// digester hashes what is read through it and checks it against a
// digest.
type digester struct {
	r    io.Reader
	want string
	h    hash.Hash
}

func newDigester(r io.Reader, want string) *digester {
	d := &digester{r: r, want: want}
	switch {
	case strings.HasPrefix(want, "sha256:"):
		d.h = sha256.New()
	case strings.HasPrefix(want, "sha512:"):
		d.h = sha512.New()
	}
	return d
}

func (d *digester) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if d.h != nil {
		d.h.Write(p[:n])
	}
	return n, err
}

// check drains what is left and compares the digests.
func (d *digester) check(what string) error {
	if _, err := io.Copy(io.Discard, d); err != nil {
		return err
	}
	if d.h == nil {
		return nil
	}
	alg, _, _ := strings.Cut(d.want, ":")
	if got := alg + ":" + hex.EncodeToString(d.h.Sum(nil)); got != d.want {
		return fmt.Errorf("%w: %s is %s, not %s", ErrBadArchive, what, got, d.want)
	}
	return nil
}

// memberName cleans a member name as every nscap reader does
// ([tarfmt.CleanName]: "." for the root); a name with a ".." component,
// which names nothing in the archive, is "".
func memberName(n string) string {
	c, err := tarfmt.CleanName(n)
	if err != nil {
		return ""
	}
	return c
}
