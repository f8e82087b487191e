package weights

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"madclip/internal/cliptest"
	"madclip/model/clip"
	"madclip/torch"
)

// sparseWeights writes a safetensors file with the tensors, shapes and
// sizes of cfg's CLIP, its data a hole: only the header is real, which is
// all CheckNamed reads.
func sparseWeights(t *testing.T, path string, cfg clip.Config) {
	t.Helper()
	shapes := clip.ExpectedShapes(cfg)
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range shapes {
			if !yield(n) {
				return
			}
		}
	})
	hdr := map[string]any{}
	var off int64
	for _, n := range names {
		size := int64(2)
		for _, d := range shapes[n] {
			size *= d
		}
		shape := append([]int64{}, shapes[n]...) // a scalar's is [], not null
		hdr[n] = map[string]any{"dtype": "F16", "shape": shape, "data_offsets": []int64{off, off + size}}
		off += size
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(js))))
	f.Write(js)
	if err := f.Truncate(8 + int64(len(js)) + off); err != nil {
		t.Fatal(err)
	}
}

// A file under a known release's name must hold that release's
// architecture.
func TestCheckNamed(t *testing.T) {
	dir := t.TempDir()
	var vitL Model
	for _, m := range Known() {
		if m.Name == "ViT-L/14-336" {
			vitL = m
		}
	}
	cfg, _ := clip.Preset(vitL.Name)
	right := filepath.Join(dir, vitL.File())
	sparseWeights(t, right, cfg)
	if err := CheckNamed(right, vitL); err != nil {
		t.Errorf("ViT-L/14-336 shapes under its name: %v", err)
	}
	wrong := filepath.Join(t.TempDir(), vitL.File())
	cliptest.WriteTiny(t, wrong, 1, torch.Float16)
	if err := CheckNamed(wrong, vitL); err == nil || !strings.Contains(err.Error(), "named as OpenAI's ViT-L/14-336 but holds another CLIP") {
		t.Errorf("a tiny CLIP under ViT-L/14-336's name: %v", err)
	}
}
