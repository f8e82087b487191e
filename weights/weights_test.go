package weights

import (
	"path/filepath"
	"strings"
	"testing"

	"madclip/internal/cliptest"
	"madclip/model/clip"
	"madclip/torch"
)

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
	cliptest.WriteSparse(t, right, cfg)
	if err := CheckNamed(right, vitL); err != nil {
		t.Errorf("ViT-L/14-336 shapes under its name: %v", err)
	}
	wrong := filepath.Join(t.TempDir(), vitL.File())
	cliptest.WriteTiny(t, wrong, 1, torch.Float16)
	if err := CheckNamed(wrong, vitL); err == nil || !strings.Contains(err.Error(), "named as OpenAI's ViT-L/14-336 but holds another CLIP") {
		t.Errorf("a tiny CLIP under ViT-L/14-336's name: %v", err)
	}
}
