package train

import (
	"slices"
	"testing"

	"madclip/dataset"
	"madclip/internal/reftest"
	"madclip/torch"
)

// augmentShots as the authors' code builds the training set: the abnormal
// shots augmented as one group first (masks following their geometry),
// then the normal shots as a second group with their own jitter draw;
// labels 1 then 0; normal shots' masks all zero.
func TestAugmentShotsComposition(t *testing.T) {
	const size, k = 16, 2
	rng := uint32(7)
	next := func() float32 { rng = rng*1664525 + 1013904223; return float32(rng>>8) / (1 << 24) }
	shot := func(mask bool) dataset.Image {
		im := dataset.Image{Pixels: make([]float32, 3*size*size), Mask: make([]float32, size*size)}
		for i := range im.Pixels {
			im.Pixels[i] = next()
		}
		for i := range im.Mask {
			if mask && next() > 0.7 {
				im.Mask[i] = 1
			}
		}
		return im
	}
	abnormal := []dataset.Image{shot(true), shot(true)}
	normal := []dataset.Image{shot(false), shot(false)}
	do(t, func(s *torch.Scope) error {
		g, _ := torch.NewGenerator(11)
		defer g.Free()
		images, masks, labels := augmentShots(abnormal, normal, size, true, torch.CPU, g)

		// The same draws, group by group, with dataset.Augment itself.
		g2, _ := torch.NewGenerator(11)
		defer g2.Free()
		group := func(imgs []dataset.Image, part func(dataset.Image) []float32, ch int64) *torch.Tensor {
			return torch.FromSlice(concat(imgs, part), int64(len(imgs)), ch, size, size)
		}
		px := func(i dataset.Image) []float32 { return i.Pixels }
		abImg, abMask := dataset.Augment(group(abnormal, px, 3), group(abnormal, func(i dataset.Image) []float32 { return i.Mask }, 1), g2)
		nImg, _ := dataset.Augment(group(normal, px, 3), nil, g2)
		n := int(abImg.Size(0))
		if n != 16*k || nImg.Size(0) != 16*k {
			t.Fatalf("%d abnormal and %d normal images from %d shots each, want %d", n, nImg.Size(0), k, 16*k)
		}
		reftest.Near(t, "images", values(t, images), append(values(t, abImg), values(t, nImg)...), 0)
		wantMasks := append(values(t, abMask), make([]float64, n*size*size)...)
		reftest.Near(t, "masks", values(t, masks), wantMasks, 0)
		if slices.Max(values(t, abMask)) != 1 {
			t.Error("the abnormal shots' masks are empty; the test cannot tell them from the normal ones")
		}
		wantLabels := make([]float64, 2*n)
		for i := range n {
			wantLabels[i] = 1
		}
		reftest.Near(t, "labels", values(t, labels), wantLabels, 0)
		return nil
	})
}

// The paper's settings fill whatever a Config leaves unset; what is set
// stays, zero betas included.
func TestConfigDefaults(t *testing.T) {
	var c Config
	c.Dataset = "Brain"
	c.Defaults()
	if c.Epochs != 60 || c.Batch != 16 || c.LR != 1e-3 || *c.Betas != [2]float64{0.5, 0.999} ||
		c.Model.ImageSize != 240 || c.Shots != 16 || c.Model.Object != "Brain" {
		t.Errorf("defaults: epochs %d, batch %d, lr %v, betas %v, size %d, shots %d, object %q",
			c.Epochs, c.Batch, c.LR, *c.Betas, c.Model.ImageSize, c.Shots, c.Model.Object)
	}
	set := Config{Epochs: 3, Batch: 2, LR: 0.01, Betas: &[2]float64{0, 0}, Shots: 4}
	set.Model.ImageSize = 56
	set.Defaults()
	if set.Epochs != 3 || set.Batch != 2 || set.LR != 0.01 || *set.Betas != [2]float64{0, 0} || set.Model.ImageSize != 56 || set.Shots != 4 {
		t.Errorf("set values changed: %+v", set)
	}
	if f := (Config{ShotsFile: "x.txt"}); func() bool { f.Defaults(); return f.Shots != 0 }() {
		t.Error("a shots file got a shot count besides")
	}
}
