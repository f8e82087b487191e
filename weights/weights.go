// Package weights finds, converts and downloads the CLIP weights madclip
// runs on. Weights live, in search order, in $MADCLIP_WEIGHTS, in ./weights
// (a checkout's own folder) and in the per-user cache
// ($XDG_CACHE_HOME/madclip, by default ~/.cache/madclip). Downloads go to
// $MADCLIP_WEIGHTS when it is set, else to the cache.
package weights

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"madclip/authorship"
	"madclip/model/clip"
	"madclip/torch/safetensors"
)

// EnvDir names the environment variable that points at a weights folder.
const EnvDir = "MADCLIP_WEIGHTS"

// VocabFile is the name of CLIP's BPE merges file.
const VocabFile = "bpe_simple_vocab_16e6.txt.gz"

// Model is a CLIP release madclip knows how to fetch.
type Model struct {
	Name   string // OpenAI's name, e.g. "ViT-L/14-336"
	URL    string
	SHA256 string // part of OpenAI's URL
}

// MaxBytes is the largest download accepted for the model: OpenAI's
// ViT-B files are about 350 MB and the ViT-L ones about 900 MB; other URLs
// get 2 GiB.
func (m Model) MaxBytes() int64 {
	switch {
	case strings.Contains(m.URL, "ViT-B-"):
		return 512 << 20
	case strings.Contains(m.URL, "ViT-L-"):
		return 1536 << 20
	}
	return 2 << 30
}

// File is the converted weights' file name.
func (m Model) File() string {
	base := filepath.Base(m.URL)
	return strings.TrimSuffix(base, filepath.Ext(base)) + ".safetensors"
}

// NamedFile is the release whose converted file is called base, if any.
func NamedFile(base string) (Model, bool) {
	for _, m := range known {
		if m.File() == base {
			return m, true
		}
	}
	return Model{}, false
}

// Known lists OpenAI's published CLIP ViTs, smallest first (a copy: the
// table itself is fixed).
func Known() []Model { return slices.Clone(known) }

// known are OpenAI's published CLIP ViTs; the SHA-256 is the second-last
// part of each URL, as OpenAI's own loader checks it.
var known = []Model{
	{"ViT-B/32", "https://openaipublic.azureedge.net/clip/models/40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af/ViT-B-32.pt",
		"40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af"},
	{"ViT-B/16", "https://openaipublic.azureedge.net/clip/models/5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f/ViT-B-16.pt",
		"5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f"},
	{"ViT-L/14", "https://openaipublic.azureedge.net/clip/models/b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836/ViT-L-14.pt",
		"b8cca3fd41ae0c99ba7e8951adf17d267cdb84cd88be6f7c2e0eca1737a03836"},
	{"ViT-L/14-336", "https://openaipublic.azureedge.net/clip/models/3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02/ViT-L-14-336px.pt",
		"3035c92b350959924f9f00213499208652fc7ea050643e8b385c2dac08641f02"},
}

// Lookup finds a known model by name; "ViT-L/14@336px" and "ViT-L-14-336px"
// are accepted spellings too.
func Lookup(name string) (Model, error) {
	norm := func(s string) string {
		s = strings.ToLower(s)
		for _, r := range []string{"/", "-", "@", "px", "_"} {
			s = strings.ReplaceAll(s, r, "")
		}
		return s
	}
	var names []string
	for _, m := range known {
		if norm(m.Name) == norm(name) {
			return m, nil
		}
		names = append(names, m.Name)
	}
	return Model{}, fmt.Errorf("unknown model %q (known: %s)", name, strings.Join(names, ", "))
}

// Dirs lists the folders searched for weights and the vocab, in order.
func Dirs() []string {
	var dirs []string
	if d := os.Getenv(EnvDir); d != "" {
		dirs = append(dirs, d)
	}
	dirs = append(dirs, "weights")
	if c, err := os.UserCacheDir(); err == nil {
		dirs = append(dirs, filepath.Join(c, "madclip"))
	}
	return dirs
}

// DefaultDir is where downloads and conversions go by default.
func DefaultDir() string {
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	if c, err := os.UserCacheDir(); err == nil {
		return filepath.Join(c, "madclip")
	}
	return "weights"
}

// ErrNotFound is returned when no file was found in any of the folders.
var ErrNotFound = errors.New("not found")

// Find returns the path of a file called name in the first folder of Dirs
// that has it. The error lists every place looked.
func Find(name string) (string, error) {
	var looked []string
	for _, d := range Dirs() {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
		looked = append(looked, p)
	}
	return "", fmt.Errorf("%s %w; looked in %s (set %s, or run 'madclip weights download')", name, ErrNotFound, strings.Join(looked, ", "), EnvDir)
}

// ConfigOf reads the architecture of the CLIP weights file at path from
// its header alone (the tensors' names and shapes), for checks made before
// the weights are loaded.
func ConfigOf(path string) (clip.Config, error) {
	f, err := safetensors.Open(path)
	if err != nil {
		return clip.Config{}, err
	}
	defer f.Close()
	if authorship.MetadataKind(f.Metadata) == authorship.Checkpoint {
		return clip.Config{}, authorship.CheckpointAsWeights("load", path)
	}
	shapes := make(map[string][]int64, len(f.Tensors))
	for _, t := range f.Tensors {
		shapes[t.Name] = t.Shape
	}
	c, err := clip.ConfigFromShapes(shapes)
	if err != nil {
		return clip.Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// CheckNamed refuses the weights file at path, found under the file name
// of the known release m, when its tensors' shapes are another CLIP's: a
// small model saved under a large one's name must not be trained on as if
// it were that one. Only the header is read.
func CheckNamed(path string, m Model) error {
	want, ok := clip.Preset(m.Name)
	if !ok {
		return fmt.Errorf("%q is not a known CLIP", m.Name)
	}
	got, err := ConfigOf(path)
	if err != nil {
		return err
	}
	if got != want {
		return fmt.Errorf("%s is named as OpenAI's %s but holds another CLIP (%d px, patch %d, width %d, %d layers); rename it, or give the weights to use with --weights",
			path, m.Name, got.ImageSize, got.PatchSize, got.VisionWidth, got.VisionLayers)
	}
	return nil
}
