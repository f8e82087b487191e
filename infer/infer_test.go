package infer

import (
	"context"
	"encoding/json"
	"errors"
	"image"
	"math"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/imaging"
	"madclip/internal/reftest"
	"madclip/metrics"
	"madclip/model"
	"madclip/model/clip/bpe"
	"madclip/torch"
	"madclip/train"
)

// .npy files read back with NumPy.
func TestWriteNPY(t *testing.T) {
	py := reftest.Python(t, "numpy")
	path := filepath.Join(t.TempDir(), "m.npy")
	data := []float32{0, 0.5, -1.25, 3, float32(math.Inf(1)), 7}
	if err := WriteNPY(path, data, 2, 3); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", "import numpy, json, sys; a = numpy.load(sys.argv[1]); print(json.dumps([list(a.shape), str(a.dtype), a[1, 2].item(), a[0, 2].item()]))", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var got []any
	json.Unmarshal(out, &got)
	if got[1] != "float32" || got[2].(float64) != 7 || got[3].(float64) != -1.25 {
		t.Errorf("numpy read %v", got)
	}
	if shape := got[0].([]any); shape[0].(float64) != 2 || shape[1].(float64) != 3 {
		t.Errorf("shape %v", shape)
	}
	if err := WriteNPY(path, data, 4, 4); err == nil {
		t.Error("shape mismatch accepted")
	}
}

// TestTurbo compares the colour map with matplotlib's "turbo" at 1,001
// points, bin edges included: every colour within one 8-bit step.
func TestTurbo(t *testing.T) {
	py := reftest.Python(t, "matplotlib")
	script := `import matplotlib, json
c = matplotlib.colormaps["turbo"]
print(json.dumps([[round(255 * v) for v in c(i / 1000)[:3]] for i in range(1001)]))`
	out, err := exec.Command(py, "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	var want [][3]int
	if err := json.Unmarshal(out, &want); err != nil {
		t.Fatal(err)
	}
	bad := 0
	for i, w := range want {
		c := Turbo(float64(i) / 1000)
		for k, v := range [3]uint8{c.R, c.G, c.B} {
			if d := int(v) - w[k]; d < -1 || d > 1 {
				if bad++; bad <= 5 {
					t.Errorf("Turbo(%.3f) = %v, matplotlib %v", float64(i)/1000, c, w)
				}
				break
			}
		}
	}
	if Turbo(-3) != Turbo(0) || Turbo(7) != Turbo(1) || Turbo(math.NaN()) != Turbo(0) {
		t.Error("values outside [0, 1] are not clamped")
	}
}

// TestHeatmapLayout: a small scan is enlarged by an integer factor, the map
// blended over it, a title band above and the colour bar beside it, outside
// the picture, from Turbo(1) at the top to Turbo(0) at the bottom.
func TestHeatmapLayout(t *testing.T) {
	orig := imaging.NewRGB(50, 30) // black
	amap := make([]float32, 16*16)
	for i := range amap {
		amap[i] = 1 // everything anomalous
	}
	h := heatmap(t, orig, amap, 16, Overlay{Score: 0.9, Threshold: 0.4, Label: "anomalous", Alpha: 0.5})
	k := 11 // ⌈512/50⌉
	ts := 2
	pad := 4 * ts // blank around the figure
	top := pad + 13*ts + 2*ts
	bar := 12*ts + 35*ts
	if h.Bounds().Dx() != 2*pad+50*k+bar || h.Bounds().Dy() != 30*k+top+pad {
		t.Fatalf("size %v, want %dx%d", h.Bounds(), 2*pad+50*k+bar, 30*k+top+pad)
	}
	want := Turbo(1)
	for _, p := range [][2]int{{pad, top}, {pad + 50*k - 1, top + 30*k - 1}, {pad + 270, top + 160}} {
		c := h.RGBAAt(p[0], p[1])
		if math.Abs(float64(c.R)-float64(want.R)/2) > 1 || math.Abs(float64(c.G)-float64(want.G)/2) > 1 {
			t.Errorf("blend at %v: %v, want half of %v over black", p, c, want)
		}
	}
	// The bar runs from Turbo(1) at the top to Turbo(0) at the bottom; the
	// ticks at 1 and 0 cross its first and last rows.
	x := pad + 50*k + 3*ts + 1 // inside the bar
	bh := 30 * k
	if c, want := h.RGBAAt(x, top+ts), Turbo(1-float64(ts)/float64(bh-1)); c != want {
		t.Errorf("near the top of the bar %v, want %v", c, want)
	}
	if c, want := h.RGBAAt(x, top+bh-1-ts), Turbo(float64(ts)/float64(bh-1)); c != want {
		t.Errorf("near the bottom of the bar %v, want %v", c, want)
	}
	for _, y := range []int{top, top + bh - 1} {
		if c := h.RGBAAt(x, y); c != textColour {
			t.Errorf("tick across the bar at row %d: %v", y, c)
		}
	}
	dark := 0
	for y := range top {
		for x := range 50 * k {
			if h.RGBAAt(x, y) == textColour {
				dark++
			}
		}
	}
	if dark < 100 {
		t.Errorf("%d text pixels in the title band", dark)
	}
	// A scan of 512 px or more is shown at its own size.
	if big := heatmap(t, imaging.NewRGB(600, 520), amap, 16, Overlay{}); big.Bounds().Dx() != 2*figurePad(2)+600+colourBarWidth(textScale(600, 520), "0.000") {
		t.Errorf("600-px scan drawn %d wide", big.Bounds().Dx())
	}
}

// A map whose one pixel reaches the threshold marks a region on a scan of
// any size: resizing averages the peak below the threshold on a smaller
// scan, but the pixel that holds its centre stays in; a map below the
// threshold marks none.
func TestPredictedRegionKeepsPeaks(t *testing.T) {
	amap := make([]float32, 16*16)
	for i := range amap {
		amap[i] = 0.1
	}
	amap[3*16+5] = 0.9
	for _, c := range []struct{ w, h, x, y int }{{8, 8, 2, 1}, {5, 7, 1, 1}, {100, 60, 34, 13}, {16, 16, 5, 3}} {
		region := PredictedRegion(amap, 16, c.w, c.h, 0.5)
		if !region[c.y*c.w+c.x] {
			t.Errorf("%dx%d scan: the peak's pixel (%d, %d) is not in the region", c.w, c.h, c.x, c.y)
		}
		n := 0
		for _, in := range region {
			if in {
				n++
			}
		}
		if c.w <= 16 && n != 1 {
			t.Errorf("%dx%d scan: %d pixels in the region, want the peak's alone", c.w, c.h, n)
		}
		if resized := resizeMap(amap, 16, c.w, c.h); c.w == 8 && slices.Max(resized) >= 0.5 {
			t.Errorf("8x8 resize keeps the peak at %v: the test shows nothing", slices.Max(resized))
		}
		if slices.Contains(PredictedRegion(amap, 16, c.w, c.h, 0.95), true) {
			t.Errorf("%dx%d scan: a region above the map's maximum", c.w, c.h)
		}
	}
}

// TestPredictedMaskAndPanel: the predicted region at the scan's size, and
// the panel's tiles with the predicted contour in red.
func TestPredictedMaskAndPanel(t *testing.T) {
	orig := imaging.NewRGB(40, 20)
	amap := make([]float32, 8*8)
	for y := range 8 {
		for x := range 4 {
			amap[y*8+x] = 1 // the left half anomalous
		}
	}
	m := PredictedMask(orig, amap, 8, 0.5)
	if m.Bounds().Dx() != 40 || m.Bounds().Dy() != 20 {
		t.Fatalf("mask size %v", m.Bounds())
	}
	for _, c := range []struct {
		x    int
		want uint8
	}{{0, 255}, {18, 255}, {21, 0}, {39, 0}} {
		if got := m.GrayAt(c.x, 10).Y; got != c.want {
			t.Errorf("mask at x=%d: %d, want %d", c.x, got, c.want)
		}
	}
	o := Overlay{Score: 0.8, Threshold: 0.5, Label: "anomalous"}
	three := panel(t, orig, nil, amap, 8, o)
	truth := make([]bool, 40*20)
	four := panel(t, orig, truth, amap, 8, o)
	// Each tile is the enlarged scan and a gap; the colour bar closes the
	// row; the text (and so the gap) grows with the row's width.
	k := displayScale(40, 20)
	for _, c := range []struct {
		panel *image.RGBA
		tiles int
	}{{three, 3}, {four, 4}} {
		ts := max(textScale(40*k, 20*k), c.tiles*40*k/panelWidthPerTextScale)
		if want := 2*figurePad(ts) + c.tiles*(40*k+6*ts/2) + colourBarWidth(ts, thresholdLabel(o)); c.panel.Bounds().Dx() != want {
			t.Errorf("%d tiles: %d px wide, want %d", c.tiles, c.panel.Bounds().Dx(), want)
		}
	}
	red := 0
	for y := range four.Bounds().Dy() {
		for x := range four.Bounds().Dx() {
			if four.RGBAAt(x, y) == predictedColour {
				red++
			}
		}
	}
	if red < 20*k {
		t.Errorf("%d contour pixels", red)
	}
}

func TestROCCurve(t *testing.T) {
	fpr, tpr := rocCurve(rank(t, []float32{0.9, 0.8, 0.8, 0.1}, []bool{true, false, true, false}), curvePoints)
	wantF := []float64{0, 0, 0.5, 1}
	wantT := []float64{0, 0.5, 1, 1}
	for i := range wantF {
		if fpr[i] != wantF[i] || tpr[i] != wantT[i] {
			t.Fatalf("ROC %v %v, want %v %v", fpr, tpr, wantF, wantT)
		}
	}
}

// OpenShared uses a loaded backbone only for checkpoints trained on it.
func TestOpenSharedChecksTheBackbone(t *testing.T) {
	_, ck, tk := tinyCheckpoint(t)
	err := torch.Do(func() error {
		for seed, ok := range map[uint64]bool{1: true, 2: false} {
			b, info, err := checkpoint.OpenBackbone(checkpoint.Source{Preset: "tiny", Seed: seed}, model.Options{ImageSize: 56}.CLIPOptions(torch.CPU))
			if err != nil {
				return err
			}
			p, err := OpenShared(ck, &checkpoint.SharedBackbone{Model: b, Info: info}, tk, torch.CPU)
			if (err == nil) != ok {
				t.Errorf("backbone seed %d: error %v", seed, err)
			}
			if p != nil {
				p.Close()
			}
			b.Free()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPRCurve(t *testing.T) {
	r, p, pos := prCurve(rank(t, []float32{0.9, 0.8, 0.8, 0.1}, []bool{true, false, true, false}), curvePoints)
	wantR := []float64{0, 0.5, 1, 1}
	wantP := []float64{1, 1, 2.0 / 3, 0.5}
	if pos != 0.5 || len(r) != len(wantR) {
		t.Fatalf("PR %v %v, positive fraction %v", r, p, pos)
	}
	for i := range wantR {
		if math.Abs(r[i]-wantR[i]) > 1e-12 || math.Abs(p[i]-wantP[i]) > 1e-12 {
			t.Fatalf("PR %v %v, want %v %v", r, p, wantR, wantP)
		}
	}
}

func rank(t *testing.T, scores []float32, labels []bool) *metrics.Ranking {
	t.Helper()
	r, err := metrics.Rank(scores, labels)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// A curve of more points than are drawn keeps n of them, evenly spread by
// index over the whole curve, its first and last included.
func TestCurveThinning(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	scores, labels := make([]float32, 10007), make([]bool, 10007)
	for i := range scores {
		labels[i] = rng.IntN(3) == 0
		scores[i] = float32(rng.Float64()) + float32(b2i(labels[i]))*0.3
	}
	r := rank(t, scores, labels)
	fullX, fullY := rocCurve(r, math.MaxInt)
	if len(fullX) != r.Distinct()+1 || fullX[len(fullX)-1] != 1 || fullY[len(fullY)-1] != 1 {
		t.Fatalf("full curve of %d points for %d distinct scores, ending at (%v, %v)", len(fullX), r.Distinct(), fullX[len(fullX)-1], fullY[len(fullY)-1])
	}
	const n = 100
	x, y := rocCurve(r, n)
	if len(x) != n {
		t.Fatalf("%d points kept, want %d", len(x), n)
	}
	step := float64(len(fullX)-1) / (n - 1)
	for i := range n {
		j := int(float64(i) * step)
		if i == n-1 {
			j = len(fullX) - 1
		}
		if x[i] != fullX[j] || y[i] != fullY[j] {
			t.Fatalf("point %d (%v, %v), want full point %d (%v, %v)", i, x[i], y[i], j, fullX[j], fullY[j])
		}
	}
	fr, fp, _ := prCurve(r, math.MaxInt)
	pr, pp, _ := prCurve(r, n)
	if len(pr) != n || pr[n-1] != fr[len(fr)-1] || pp[n-1] != fp[len(fp)-1] || pr[1] != fr[int(step)] {
		t.Errorf("precision-recall curve thinned to %d points, ends (%v, %v)", len(pr), pr[n-1], pp[n-1])
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Stream tells of progress once before the first image, then after each
// image, skipped ones included, and never runs backwards.
func TestStreamProgress(t *testing.T) {
	root, ck, tk := tinyCheckpoint(t)
	split, err := dataset.ReadSplit(root, "Brain", "test")
	if err != nil {
		t.Fatal(err)
	}
	// A missing image in the middle, skipped.
	samples := append([]dataset.Sample{}, split.Samples[:2]...)
	samples = append(samples, dataset.Sample{Path: filepath.Join(root, "missing.png")})
	samples = append(samples, split.Samples[2:]...)
	n := len(samples)
	var calls [][2]int
	var live []int64 // tensors alive as each image is handed over
	var leaked int64
	scored, skipped := 0, 0
	err = torch.Do(func() error {
		before := torch.LiveTensors()
		defer func() { leaked = torch.LiveTensors() - before }()
		p, err := Open(ck, "", tk, torch.CPU)
		if err != nil {
			return err
		}
		defer p.Close()
		// Prediction holds the image tower alone: the class embeddings
		// are all it needs of the text tower.
		if p.backbone.Text != nil || slices.ContainsFunc(p.backbone.Params().Names(), func(n string) bool {
			return !strings.HasPrefix(n, "visual.") && n != "logit_scale"
		}) {
			t.Errorf("the predictor keeps the text tower: %v", p.backbone.Params().Names())
		}
		o := StreamOptions{Batch: 2,
			Skip:     func(dataset.Decoded) { skipped++ },
			Progress: func(done, total int) { calls = append(calls, [2]int{done, total}) }}
		return p.Stream(samples, o, func(dataset.Decoded, Result) error {
			if len(calls) == 0 {
				t.Error("an image was scored before progress was first told")
			}
			live = append(live, torch.LiveTensors())
			scored++
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	// Each batch frees its tensors before the next: none piles up over
	// the images, and none outlives the predictor.
	if leaked != 0 {
		t.Errorf("%d tensors alive after the predictor closed", leaked)
	}
	if len(live) > 0 && slices.Max(live) > live[0] {
		t.Errorf("tensors alive as each image was handed over: %v (growing)", live)
	}
	if scored != n-1 || skipped != 1 {
		t.Errorf("scored %d and skipped %d of %d, want %d and 1", scored, skipped, n, n-1)
	}
	if len(calls) != n+1 {
		t.Fatalf("progress told %d times for %d images, want %d: %v", len(calls), n, n+1, calls)
	}
	for i, got := range calls {
		if got != [2]int{i, n} {
			t.Errorf("progress call %d: %v, want [%d %d]", i, got, i, n)
		}
	}
}

// A prediction that comes out NaN is an error naming the checkpoint, never
// a label: NaN pixels stand in for the damaged parameters that make a
// model overflow.
func TestPredictRefusesNonFinite(t *testing.T) {
	_, ck, tk := tinyCheckpoint(t)
	err := torch.Do(func() error {
		p, err := Open(ck, "", tk, torch.CPU)
		if err != nil {
			return err
		}
		defer p.Close()
		good := make([]float32, 3*56*56)
		for i := range good {
			good[i] = float32(i%7) / 7
		}
		bad := slices.Clone(good)
		bad[100] = float32(math.NaN())
		res, err := p.Predict([][]float32{good})
		if err != nil || len(res) != 1 || !res[0].finite() {
			t.Errorf("a good image: %v %v", res, err)
		}
		_, err = p.Predict([][]float32{good, bad})
		var nf *NonFiniteError
		if !errors.As(err, &nf) || nf.Index != 1 || !strings.Contains(err.Error(), ck) {
			t.Errorf("NaN pixels: %v, want a NonFiniteError for image 1 naming %s", err, ck)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// tinyCheckpoint trains a checkpoint on a small synthetic Brain dataset
// with the tiny preset (56 px, one epoch), and returns the dataset's root,
// the checkpoint and the tokenizer.
func tinyCheckpoint(t *testing.T) (root, ck string, tk *bpe.Tokenizer) {
	t.Helper()
	root = t.TempDir()
	if err := dataset.Synth(root, dataset.SynthOptions{Seed: 1, Valid: 2, Test: 2, Size: 32}); err != nil {
		t.Fatal(err)
	}
	tk = reftest.Tokenizer(t)
	c := train.Config{Data: root, Dataset: "Brain", Shots: 2, Seed: 1, Epochs: 1, Preset: "tiny", BackboneSeed: 1,
		Model: model.Options{ImageSize: 56}, Out: filepath.Join(t.TempDir(), "ck.safetensors")}
	err := torch.Do(func() error {
		_, err := train.Run(context.Background(), c, tk, train.Silent{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return root, c.Out, tk
}

// The per-image Dice and IoU are averaged over the images whose mask marks
// something, each computed on its own pixels.
func TestMeanOverlap(t *testing.T) {
	maps := [][]float32{
		{0.9, 0.9, 0.1, 0.1}, // predicts 2 of 2 marked pixels, and 0 more: Dice 1, IoU 1
		{0.9, 0.1, 0.9, 0.1}, // 1 of 2 marked, 1 false: Dice 0.5, IoU 1/3
		{0.9, 0.9, 0.9, 0.9}, // a normal image: not counted
		{0.1, 0.1, 0.1, 0.1}, // nothing predicted on a marked pixel: Dice 0, IoU 0
	}
	masks := [][]bool{{true, true, false, false}, {true, true, false, false}, {false, false, false, false}, {false, false, false, true}}
	dice, iou, ok := meanOverlap(maps, masks, 0.5)
	if !ok || math.Abs(dice-0.5) > 1e-12 || math.Abs(iou-(1+1.0/3)/3) > 1e-12 {
		t.Errorf("mean Dice %v, IoU %v (%v); want 0.5 and %v", dice, iou, ok, (1+1.0/3)/3)
	}
	if _, _, ok := meanOverlap(maps[2:3], masks[2:3], 0.5); ok {
		t.Error("a mean over no marked image")
	}
}
