// Package clip is OpenAI's CLIP (vision and text towers) on the torch
// package: exactly enough that OpenAI's published weights give OpenAI's
// numbers, plus the options MadCLIP needs (exact GELU, another input
// resolution, feature taps, a text tower fed with embeddings, no causal mask).
package clip

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"madclip/model/clip/bpe"
)

// minContext is the context length MadCLIP's prompts need: the learnable
// context vectors and the longest phrase with its start and end marks fit
// in OpenAI's 77.
const minContext = 77

// Config is a CLIP architecture.
type Config struct {
	EmbedDim int `json:"embed_dim"` // joint embedding size

	ImageSize    int `json:"image_size"` // the resolution the weights were trained at
	PatchSize    int `json:"patch_size"`
	VisionWidth  int `json:"vision_width"`
	VisionLayers int `json:"vision_layers"`
	VisionHeads  int `json:"vision_heads"`

	ContextLength int `json:"context_length"`
	VocabSize     int `json:"vocab_size"`
	TextWidth     int `json:"text_width"`
	TextLayers    int `json:"text_layers"`
	TextHeads     int `json:"text_heads"`
}

// Grid is the side of the trained patch grid.
func (c Config) Grid() int { return c.ImageSize / c.PatchSize }

// Validate checks that the configuration is internally consistent.
func (c Config) Validate() error {
	for name, v := range map[string]int{
		"embed dim": c.EmbedDim, "image size": c.ImageSize, "patch size": c.PatchSize,
		"vision width": c.VisionWidth, "vision layers": c.VisionLayers, "vision heads": c.VisionHeads,
		"context length": c.ContextLength, "vocab size": c.VocabSize, "text width": c.TextWidth,
		"text layers": c.TextLayers, "text heads": c.TextHeads,
	} {
		if v <= 0 {
			return fmt.Errorf("clip config: %s must be positive, got %d", name, v)
		}
	}
	if c.VisionWidth%c.VisionHeads != 0 || c.TextWidth%c.TextHeads != 0 {
		return fmt.Errorf("clip config: widths (%d, %d) must divide by the head counts (%d, %d)", c.VisionWidth, c.TextWidth, c.VisionHeads, c.TextHeads)
	}
	if c.ImageSize%c.PatchSize != 0 {
		return fmt.Errorf("clip config: image size %d is not a multiple of the patch size %d", c.ImageSize, c.PatchSize)
	}
	if c.VocabSize < bpe.VocabSize {
		return fmt.Errorf("clip config: a vocabulary of %d tokens, but CLIP's tokenizer gives ids up to %d", c.VocabSize, bpe.VocabSize-1)
	}
	if c.ContextLength < minContext {
		return fmt.Errorf("clip config: a context of %d tokens, but MadCLIP's prompts take %d", c.ContextLength, minContext)
	}
	return nil
}

// presets are OpenAI's published CLIP ViTs, by the names OpenAI uses, and
// the tiny test model. Read through Preset, which hands out copies.
var presets = map[string]Config{
	"ViT-B/32":     {EmbedDim: 512, ImageSize: 224, PatchSize: 32, VisionWidth: 768, VisionLayers: 12, VisionHeads: 12, ContextLength: 77, VocabSize: 49408, TextWidth: 512, TextLayers: 12, TextHeads: 8},
	"ViT-B/16":     {EmbedDim: 512, ImageSize: 224, PatchSize: 16, VisionWidth: 768, VisionLayers: 12, VisionHeads: 12, ContextLength: 77, VocabSize: 49408, TextWidth: 512, TextLayers: 12, TextHeads: 8},
	"ViT-L/14":     {EmbedDim: 768, ImageSize: 224, PatchSize: 14, VisionWidth: 1024, VisionLayers: 24, VisionHeads: 16, ContextLength: 77, VocabSize: 49408, TextWidth: 768, TextLayers: 12, TextHeads: 12},
	"ViT-L/14-336": {EmbedDim: 768, ImageSize: 336, PatchSize: 14, VisionWidth: 1024, VisionLayers: 24, VisionHeads: 16, ContextLength: 77, VocabSize: 49408, TextWidth: 768, TextLayers: 12, TextHeads: 12},
	// Tiny is a small random model for tests and demos on a CPU: the same
	// structure at a fraction of the size (64-wide heads, as the shapes imply).
	"tiny": {EmbedDim: 64, ImageSize: 56, PatchSize: 14, VisionWidth: 128, VisionLayers: 4, VisionHeads: 2, ContextLength: 77, VocabSize: 49408, TextWidth: 128, TextLayers: 2, TextHeads: 2},
}

// Preset is the architecture of the preset called name (one of
// PresetNames), and false for an unknown name.
func Preset(name string) (Config, bool) {
	c, ok := presets[name]
	return c, ok
}

// Name is the name of the preset whose architecture c is ("ViT-L/14-336"),
// or a short description of it when it is none of them.
func (c Config) Name() string {
	for _, n := range PresetNames() {
		if presets[n] == c {
			return n
		}
	}
	return fmt.Sprintf("a ViT of width %d, %d blocks, patch %d at %d px", c.VisionWidth, c.VisionLayers, c.PatchSize, c.ImageSize)
}

// Tiny is the "tiny" preset: a small CLIP of the real structure, for tests
// and demos on a CPU with random weights.
func Tiny() Config { return presets["tiny"] }

// PresetNames lists the presets in a stable order.
func PresetNames() []string {
	names := make([]string, 0, len(presets))
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ConfigFromShapes infers the architecture from the weights' tensor shapes,
// as OpenAI's loader does: widths from the patch conv and ln_final, layer
// counts by counting blocks, 64-wide heads, the grid from the positional
// embedding.
func ConfigFromShapes(shapes map[string][]int64) (Config, error) {
	get := func(name string, dims int) ([]int64, error) {
		s, ok := shapes[name]
		if !ok {
			return nil, fmt.Errorf("not CLIP weights: no tensor %s", name)
		}
		if len(s) != dims {
			return nil, fmt.Errorf("not CLIP weights: %s has shape %v, want %d dimensions", name, s, dims)
		}
		return s, nil
	}
	conv, err := get("visual.conv1.weight", 4)
	if err != nil {
		return Config{}, err
	}
	pos, err := get("visual.positional_embedding", 2)
	if err != nil {
		return Config{}, err
	}
	proj, err := get("text_projection", 2)
	if err != nil {
		return Config{}, err
	}
	tpos, err := get("positional_embedding", 2)
	if err != nil {
		return Config{}, err
	}
	tok, err := get("token_embedding.weight", 2)
	if err != nil {
		return Config{}, err
	}
	lnf, err := get("ln_final.weight", 1)
	if err != nil {
		return Config{}, err
	}
	grid := int(math.Round(math.Sqrt(float64(pos[0] - 1))))
	if int64(grid*grid+1) != pos[0] {
		return Config{}, fmt.Errorf("not CLIP weights: visual.positional_embedding has %d rows, not a square grid plus one", pos[0])
	}
	c := Config{
		EmbedDim:      int(proj[1]),
		PatchSize:     int(conv[3]),
		VisionWidth:   int(conv[0]),
		VisionLayers:  countBlocks(shapes, "visual.transformer.resblocks."),
		ContextLength: int(tpos[0]),
		VocabSize:     int(tok[0]),
		TextWidth:     int(lnf[0]),
		TextLayers:    countBlocks(shapes, "transformer.resblocks."),
	}
	c.ImageSize = c.PatchSize * grid
	c.VisionHeads = c.VisionWidth / 64
	c.TextHeads = c.TextWidth / 64
	if c.VisionHeads == 0 {
		c.VisionHeads = 1
	}
	if c.TextHeads == 0 {
		c.TextHeads = 1
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

func countBlocks(shapes map[string][]int64, prefix string) int {
	seen := map[int]bool{}
	for name := range shapes {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		num, _, _ := strings.Cut(rest, ".")
		if n, err := strconv.Atoi(num); err == nil {
			seen[n] = true
		}
	}
	return len(seen)
}
