package dataset

import (
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"madclip/internal/reftest"
	"madclip/torch"
)

func writeF32(t *testing.T, path string, v []float32) {
	t.Helper()
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

// Augment against an independent PyTorch computation of the authors'
// rules (testdata/reference_augment.py): rotations and translations of 5%
// through affine_grid/grid_sample, truncated zoom crops (48 px: 41 at 1.15
// and 36 at 1.3, where rounding would give 42 and 37), one jitter factor
// pair for the group with the mean over channels and rows, flips.
func TestAugmentMatchesTorch(t *testing.T) {
	py := reftest.Python(t, "torch, numpy")
	// 48 px with a few shots; the paper's 240 px (12-px shifts, crops of
	// 218, 208, 200 and 184) with one.
	for _, c := range []struct{ n, size int64 }{{3, 48}, {1, 240}} {
		augmentAgainstTorch(t, py, c.n, c.size)
	}
	if zoomCrop(240, 1.15) != 208 || zoomCrop(240, 1.3) != 184 {
		t.Errorf("zoom crops at 240: %d, %d (want 208, 184)", zoomCrop(240, 1.15), zoomCrop(240, 1.3))
	}
}

// augmentAgainstTorch compares Augment on n random size² images and masks
// with testdata/reference_augment.py.
func augmentAgainstTorch(t *testing.T, py string, n, size int64) {
	const seed = 11
	dir := t.TempDir()
	err := torch.Do(func() error {
		return torch.Scoped(func(s *torch.Scope) error {
			g, err := torch.NewGenerator(seed)
			if err != nil {
				return err
			}
			defer g.Free()
			src, _ := torch.NewGenerator(99)
			defer src.Free()
			img := torch.Rand(src, torch.Float32, torch.CPU, n, 3, size, size)
			mask := torch.Rand(src, torch.Float32, torch.CPU, n, 1, size/8, size/8).GtScalar(0.6).ToDType(torch.Float32)
			mask = torch.Interpolate(mask, size, size, torch.Resize{})
			iv, _ := img.Float32s()
			mv, err := mask.Float32s()
			if err != nil {
				return err
			}
			writeF32(t, filepath.Join(dir, "images.f32"), iv)
			writeF32(t, filepath.Join(dir, "masks.f32"), mv)
			cmd := exec.Command(py, filepath.Join("testdata", "reference_augment.py"), dir, strconv.FormatInt(n, 10), strconv.FormatInt(size, 10), strconv.Itoa(seed))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("reference_augment.py: %v\n%s", err, out)
			}
			ai, am := Augment(img, mask, g)
			gotI, _ := ai.Float32s()
			gotM, err := am.Float32s()
			if err != nil {
				return err
			}
			wantI := readF32(t, filepath.Join(dir, "aug_images.f32"))
			wantM := readF32(t, filepath.Join(dir, "aug_masks.f32"))
			if len(gotI) != len(wantI) || len(gotI) != Variants*int(n*3*size*size) || len(gotM) != len(wantM) {
				t.Fatalf("sizes: images %d vs %d, masks %d vs %d", len(gotI), len(wantI), len(gotM), len(wantM))
			}
			plane := int(n * 3 * size * size)
			for i := range gotI {
				if d := math.Abs(float64(gotI[i] - wantI[i])); d > 1e-5 {
					t.Fatalf("%d px: image variant %d differs from the reference by %g at %d", size, i/plane, d, i%plane)
				}
			}
			mplane := int(n * size * size)
			for i := range gotM {
				if gotM[i] != wantM[i] {
					t.Fatalf("%d px: mask variant %d differs from the reference at %d", size, i/mplane, i%mplane)
				}
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
