package main

import (
	"bufio"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"madclip/checkpoint"
	"madclip/dataset"
	"madclip/imaging"
	"madclip/infer"
	"madclip/internal/reftest"
)

var (
	trainedOnce sync.Once
	trainedRoot string
	trainedCk   string
	trainedErr  string
)

// trained synthesises data and trains a tiny model once for these tests.
func trained(t *testing.T) (root, ck string) {
	t.Helper()
	trainedOnce.Do(func() {
		dir, err := os.MkdirTemp(testRoot, "trained")
		if err != nil {
			trainedErr = err.Error()
			return
		}
		trainedRoot = filepath.Join(dir, "data")
		trainedCk = filepath.Join(dir, "tiny.safetensors")
		if _, e, code := madclip(t, nil, "synth", "--out", trainedRoot, "--valid", "8", "--test", "6"); code != 0 {
			trainedErr = e
			return
		}
		if _, e, code := madclip(t, nil, "train", "--data", trainedRoot, "--dataset", "Brain", "--preset", "tiny", "--epochs", "4",
			"--shots", "8", "--image-size", "112", "--out", trainedCk, "--quiet", "--device", "cpu"); code != 0 {
			trainedErr = e
		}
	})
	if trainedErr != "" {
		t.Fatal(trainedErr)
	}
	return trainedRoot, trainedCk
}

func readNPY(t *testing.T, path string) (shape []int, data []float32) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := bufio.NewReader(f)
	magic := make([]byte, 8)
	r.Read(magic)
	if string(magic[:6]) != "\x93NUMPY" {
		t.Fatalf("%s: not .npy", path)
	}
	var hl uint16
	binary.Read(r, binary.LittleEndian, &hl)
	hdr := make([]byte, hl)
	if _, err := r.Read(hdr); err != nil {
		t.Fatal(err)
	}
	if (10+int(hl))%64 != 0 || !strings.Contains(string(hdr), "'<f4'") {
		t.Fatalf("header %q", hdr)
	}
	s := string(hdr)
	s = s[strings.Index(s, "(")+1 : strings.Index(s, ")")]
	for _, p := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(p), &n); err == nil {
			shape = append(shape, n)
		}
	}
	for {
		var v float32
		if err := binary.Read(r, binary.LittleEndian, &v); err != nil {
			break
		}
		data = append(data, v)
	}
	return shape, data
}

func TestPredictCLI(t *testing.T) {
	root, ck := trained(t)
	img := filepath.Join(root, "Brain_AD", "test", "Ungood", "img", "002.png")
	mask := filepath.Join(root, "Brain_AD", "test", "Ungood", "anomaly_mask", "002.png")
	out := t.TempDir()
	heat, raw := filepath.Join(out, "heat.png"), filepath.Join(out, "map.npy")
	// Flags after the image, as users write them.
	o, e, code := madclip(t, nil, "predict", img, "--checkpoint", ck, "--heatmap", heat, "--raw-map", raw, "--json", "--device", "cpu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	var pr prediction
	if err := json.Unmarshal([]byte(o), &pr); err != nil {
		t.Fatalf("%v: %q", err, o)
	}
	// The detection head's score comes with every prediction, also for a
	// model trained with masks.
	if !strings.Contains(o, `"det_score":`) || !(pr.DetScore > 0 && pr.DetScore < 1) {
		t.Errorf("det_score missing or outside (0, 1): %q", o)
	}
	if pr.Score < 0 || pr.Score > 1 || string(pr.Heatmap) != heat || string(pr.RawMap) != raw || (pr.Label != "anomalous" && pr.Label != "normal") {
		t.Errorf("prediction %+v", pr)
	}
	// The heatmap shows the 64-px input enlarged 8 times, with the title
	// band above and the colour bar beside it.
	f, _ := os.Open(heat)
	hm, err := png.Decode(f)
	f.Close()
	in, _ := imaging.Load(img)
	if dx, dy := hm.Bounds().Dx()-8*in.W, hm.Bounds().Dy()-8*in.H; err != nil || dx <= 0 || dx > 200 || dy <= 0 || dy > 100 {
		t.Fatalf("heatmap %v (%v), input %dx%d", hm.Bounds(), err, in.W, in.H)
	}
	// --mask: the predicted region at the input's size, 0 or 255; --panel
	// with the ground truth has four tiles.
	maskOut, panel := filepath.Join(out, "region.png"), filepath.Join(out, "panel.png")
	if _, e, code := madclip(t, nil, "predict", img, "--checkpoint", ck, "--mask", maskOut, "--panel", panel, "--ground-truth", mask, "--device", "cpu"); code != 0 {
		t.Fatal(e)
	} else if !strings.Contains(e, "predicted region written to "+maskOut+"\nfigure written to "+panel+"\n") && !strings.Contains(e, "figure written to "+panel+"\npredicted region written to "+maskOut+"\n") {
		t.Errorf("the plain listing does not say where the pictures went: %s", e)
	}
	region, err := imaging.Load(maskOut)
	if err != nil || region.W != in.W || region.H != in.H {
		t.Fatalf("--mask %v: %v", region, err)
	}
	white := 0
	for _, v := range region.Luma().Pix {
		if v != 0 && v != 255 {
			t.Fatalf("--mask holds grey %d", v)
		}
		if v == 255 {
			white++
		}
	}
	if pr.Label == "anomalous" && white == 0 {
		t.Error("an anomalous scan with an empty predicted region")
	}
	if p, err := imaging.Load(panel); err != nil || p.W < 4*8*in.W || p.H < 8*in.H {
		t.Errorf("--panel %v: %v", p, err)
	}
	_, e, code = madclip(t, nil, "predict", img, img, "--checkpoint", ck, "--panel", out, "--ground-truth", mask)
	wantFailure(t, "--ground-truth", e, code)
	// The raw map is 112×112 and hottest on the anomaly.
	shape, m := readNPY(t, raw)
	if len(shape) != 2 || shape[0] != 112 || shape[1] != 112 || len(m) != 112*112 {
		t.Fatalf("raw map shape %v, %d values", shape, len(m))
	}
	mk, _ := imaging.Load(mask)
	mk112 := mk.Luma().ResizeNearest(112, 112)
	var inside, outside, ni, no float64
	best, bestAt := float32(-1), 0
	for i, v := range m {
		if v > best {
			best, bestAt = v, i
		}
		if mk112.Pix[i] > 127 {
			inside += float64(v)
			ni++
		} else {
			outside += float64(v)
			no++
		}
	}
	if !(inside/ni > outside/no) || math.Abs(float64(best)-pr.Score) > 1e-5 {
		t.Errorf("map mean inside the anomaly %.3f, outside %.3f; max %.4f vs score %.4f", inside/ni, outside/no, best, pr.Score)
	}
	if mk112.Pix[bestAt] <= 127 {
		t.Logf("note: the hottest pixel is outside the mask (mean inside %.3f, outside %.3f)", inside/ni, outside/no)
	}
	// A folder: one line per image, heatmaps in a folder, CSV.
	folder := filepath.Join(root, "Brain_AD", "test", "good", "img")
	hdir := filepath.Join(out, "heat")
	o, e, code = madclip(t, nil, "predict", folder, "--checkpoint", ck, "--heatmap", hdir, "--csv", "--device", "cpu")
	if code != 0 {
		t.Fatalf("folder: exit %d: %s", code, e)
	}
	rows, err := csv.NewReader(strings.NewReader(o)).ReadAll()
	if err != nil || len(rows) != 7 || strings.Join(rows[0], ",") != "path,score,label,det_score,heatmap,raw_map,panel,mask,threshold,threshold_origin" {
		t.Fatalf("CSV: %v %q", err, o)
	}
	// Scores at full precision, as --json gives them, and the threshold
	// the labels used on every row.
	js, _, _ := madclip(t, nil, "predict", folder, "--checkpoint", ck, "--json", "--device", "cpu")
	for i, line := range strings.Split(strings.TrimSpace(js), "\n") {
		var p prediction
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatal(err)
		}
		score, _ := strconv.ParseFloat(rows[i+1][1], 64)
		th, _ := strconv.ParseFloat(rows[i+1][8], 64)
		if score != p.Score || th != p.Provenance.Threshold || rows[i+1][9] != p.Provenance.ThresholdOrigin || rows[i+1][2] != p.Label {
			t.Errorf("CSV row %q, JSON %s", rows[i+1], line)
		}
	}
	if entries, _ := os.ReadDir(hdir); len(entries) != 6 {
		t.Errorf("%d heatmaps, want 6", len(entries))
	}
}

func TestPredictBadInputs(t *testing.T) {
	root, ck := trained(t)
	dir := t.TempDir()
	good := filepath.Join(root, "Brain_AD", "test", "good", "img", "000.png")
	text := filepath.Join(dir, "notes.png")
	os.WriteFile(text, []byte("not an image"), 0o644)
	raw, _ := os.ReadFile(good)
	trunc := filepath.Join(dir, "trunc.png")
	os.WriteFile(trunc, raw[:len(raw)/2], 0o644)
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(empty, 0o755)
	notCk := filepath.Join(dir, "w.safetensors")
	os.WriteFile(notCk, []byte("garbage"), 0o644)
	base := []string{"predict", "--checkpoint", ck, "--device", "cpu"}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{filepath.Join(dir, "missing.png")}, "missing.png"},
		{[]string{text}, text},
		{[]string{trunc}, trunc},
		{[]string{empty}, empty},
		{[]string{good, "--heatmap", "/proc/nowhere/heat.png"}, "/proc/nowhere/heat.png"},
	} {
		_, e, code := madclip(t, nil, append(base, c.args...)...)
		wantFailure(t, c.want, e, code)
	}
	_, e, code := madclip(t, nil, "predict", good, "--checkpoint", notCk)
	wantFailure(t, notCk, e, code)
	// A damaged JPEG is refused, unless --damaged-jpeg asks to score it
	// as PIL decodes it.
	damaged := filepath.Join(dir, "damaged.jpg")
	os.WriteFile(damaged, damagedJPEG(t), 0o644)
	_, e, code = madclip(t, nil, append(base, damaged)...)
	wantFailure(t, "--damaged-jpeg", e, code)
	if o, e, code := madclip(t, nil, append(base, damaged, "--damaged-jpeg")...); code != 0 || !strings.Contains(o, "damaged.jpg") {
		t.Errorf("--damaged-jpeg: exit %d %s %s", code, o, e)
	}
	// A checkpoint trained on other CLIP weights is refused.
	wa := tinyWeights(t, t.TempDir())
	ckW := filepath.Join(dir, "w-ck.safetensors")
	if _, e, code := madclip(t, nil, "train", "--data", root, "--dataset", "Brain", "--weights", wa, "--epochs", "1", "--shots", "2",
		"--image-size", "56", "--out", ckW, "--quiet", "--device", "cpu"); code != 0 {
		t.Fatal(e)
	}
	other := filepath.Join(t.TempDir(), "other.safetensors")
	otherBytes, _ := os.ReadFile(wa)
	otherBytes[len(otherBytes)-1] ^= 1 // the same architecture, other weights
	os.WriteFile(other, otherBytes, 0o644)
	_, e, code = madclip(t, nil, "predict", good, "--checkpoint", ckW, "--weights", other, "--device", "cpu")
	wantFailure(t, "other CLIP weights", e, code)
	// With the right weights it works.
	if _, e, code := madclip(t, nil, "predict", good, "--checkpoint", ckW, "--weights", wa, "--device", "cpu"); code != 0 {
		t.Errorf("right weights refused: %s", e)
	}
}

func TestEvalCLI(t *testing.T) {
	root, ck := trained(t)
	report := filepath.Join(t.TempDir(), "report")
	o, e, code := madclip(t, nil, "eval", "--checkpoint", ck, "--data", root, "--report", report, "--failures", "2", "--device", "cpu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	for _, want := range []string{"image AUROC", "pixel AUROC", "Brain: 12 test images, scored by the anomaly map\n", "image AUROC of the detection head"} {
		if !strings.Contains(o, want) {
			t.Errorf("output lacks %q: %s", want, o)
		}
	}
	// On another dataset (no masks) the text says what the model was
	// trained on, and still gives the detection head's AUROC beside the
	// map's.
	o, e, code = madclip(t, nil, "eval", "--checkpoint", ck, "--data", root, "--dataset", "Chest", "--device", "cpu")
	if code != 0 {
		t.Fatalf("eval on Chest: exit %d: %s", code, e)
	}
	for _, want := range []string{"Chest: 12 test images (a model trained on Brain), scored by the anomaly map\n", "image AUROC of the detection head"} {
		if !strings.Contains(o, want) {
			t.Errorf("eval on Chest: output lacks %q: %s", want, o)
		}
	}
	var rep struct {
		ImageAUROC    float64 `json:"image_auroc"`
		DetImageAUROC float64 `json:"det_image_auroc"`
		PixelAUROC    float64 `json:"pixel_auroc"`
		Scores        []struct {
			Path     string
			Score    float64
			DetScore float64 `json:"det_score"`
		}
	}
	b, err := os.ReadFile(filepath.Join(report, "report.json"))
	if err != nil || json.Unmarshal(b, &rep) != nil || len(rep.Scores) != 12 {
		t.Fatalf("report.json: %v", err)
	}
	// Both image scores for every image: the map's maximum and the
	// detection head's.
	if !strings.Contains(string(b), `"det_score"`) || !(rep.Scores[0].DetScore > 0) || !(rep.DetImageAUROC > 0) || !strings.Contains(o, "detection head") {
		t.Errorf("the detection score is missing: %+v", rep.Scores[0])
	}
	if rep.ImageAUROC < 0.9 || rep.PixelAUROC < 0.9 {
		t.Errorf("image AUROC %.3f, pixel AUROC %.3f", rep.ImageAUROC, rep.PixelAUROC)
	}
	if _, err := os.Stat(filepath.Join(report, "roc_image.png")); err != nil {
		t.Error(err)
	}
	for _, n := range []string{"roc_image.png", "pr_image.png", "roc_pixel.png", "pr_pixel.png"} {
		if _, err := os.Stat(filepath.Join(report, n)); err != nil {
			t.Error(err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(report, "failures")); len(entries) != 4 {
		t.Errorf("%d failure heatmaps, want 4", len(entries))
	}
	// A threshold a hair from the highest normal score or the lowest
	// abnormal one (both among the figures), chosen so that it needs 5
	// decimals to be told from that score and no more for any other: every
	// figure's name has as many (at least 5, one number for all). Which
	// side works depends on the scores (one just below a 4-decimal rounding
	// boundary has no such threshold above it).
	top, bottom := -1.0, 2.0
	for _, s := range rep.Scores {
		if strings.Contains(s.Path, "/good/") {
			top = max(top, s.Score)
		} else {
			bottom = min(bottom, s.Score)
		}
	}
	th := ""
	for _, anchor := range []float64{top, bottom} {
		for k := -99; k <= 99 && th == ""; k++ {
			c := fmt.Sprintf("%.6f", anchor+float64(k)*1e-6)
			v, _ := strconv.ParseFloat(c, 64)
			need := 3
			for _, s := range rep.Scores {
				need = max(need, infer.Decimals(s.Score, v, 3))
			}
			if need == 5 && infer.Decimals(anchor, v, 3) == 5 {
				th = c
			}
		}
	}
	if th == "" {
		t.Fatalf("no threshold within 1e-4 of %v or %v needs 5 decimals", top, bottom)
	}
	if _, e, code := madclip(t, nil, "eval", "--checkpoint", ck, "--data", root, "--report", report, "--failures", "2", "--threshold", th, "--device", "cpu"); code != 0 {
		t.Fatal(e)
	}
	entries, _ := os.ReadDir(filepath.Join(report, "failures"))
	digits := map[int]bool{}
	for _, en := range entries {
		parts := strings.Split(en.Name(), "_")
		if len(parts) != 3 || len(parts[1]) < len("0.12345") {
			t.Errorf("failure figure %s: want a score with at least 5 decimals (threshold %s)", en.Name(), th)
		} else {
			digits[len(parts[1])] = true
		}
	}
	if len(entries) != 4 || len(digits) != 1 {
		t.Errorf("%d failure figures, scores printed at %d different precisions; want 4 at one", len(entries), len(digits))
	}
	_, e, code = madclip(t, nil, "eval", "--checkpoint", ck, "--data", root, "--dataset", "Liver")
	wantFailure(t, "Liver_AD", e, code)
	// --failures 0: the report without a failures folder; in the same
	// folder again, the earlier pictures go.
	bare := filepath.Join(t.TempDir(), "bare")
	for _, dir := range []string{bare, report} {
		if _, e, code := madclip(t, nil, "eval", "--checkpoint", ck, "--data", root, "--report", dir, "--failures", "0", "--device", "cpu", "-q"); code != 0 {
			t.Fatal(e)
		}
		entries, err := os.ReadDir(filepath.Join(dir, "failures"))
		if (dir == bare && !os.IsNotExist(err)) || len(entries) != 0 {
			t.Errorf("--failures 0 into %s: failures folder %v, %v", dir, entries, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "report.json")); err != nil {
			t.Errorf("--failures 0 into %s: no report.json", dir)
		}
	}

	// --json: the keys of predict --json per image, the labels at the
	// checkpoint's threshold agreeing with the counts and rates reported,
	// the provenance, AUPRO and Dice/IoU for a dataset with masks.
	o, e, code = madclip(t, nil, "eval", "--checkpoint", ck, "--data", root, "--json", "--threshold", "0.6", "--device", "cpu")
	if code != 0 {
		t.Fatal(e)
	}
	var ev struct {
		PixelAUPRO *float64 `json:"pixel_aupro"`
		At         struct {
			Threshold, Sensitivity, Specificity, Precision, F1 float64
			TP, FP, TN, FN                                     int
			PixelDice                                          *float64 `json:"pixel_dice"`
		} `json:"at_threshold"`
		Provenance struct {
			Version   string  `json:"madclip_version"`
			WrittenBy string  `json:"checkpoint_written_by"`
			SHA256    string  `json:"checkpoint_sha256"`
			Threshold float64 `json:"threshold"`
			Origin    string  `json:"threshold_origin"`
			Shots     int     `json:"shots"`
			Epochs    int     `json:"epochs"`
			ImageSize int     `json:"image_size"`
			Seed      *int    `json:"seed"`
			Preset    string  `json:"backbone_preset"`
			Digest    *string `json:"weights_digest"`
			Model     struct {
				Layers    []int `json:"layers"`
				ImageSize int   `json:"image_size"`
			} `json:"model"`
			Training *struct {
				Data  string  `json:"data"`
				Batch int     `json:"batch"`
				LR    float64 `json:"lr"`
			} `json:"training"`
			Youden      float64                 `json:"threshold_youden"`
			Calibration *checkpoint.Calibration `json:"calibration"`
		} `json:"provenance"`
		ScoredBy string `json:"scored_by"`
		Scores   []struct {
			Path, Label string
			Score       float64
			Abnormal    bool
		} `json:"scores"`
	}
	if err := json.Unmarshal([]byte(o), &ev); err != nil {
		t.Fatalf("eval --json: %v: %s", err, o)
	}
	var tp, fp, tn, fn int
	for _, s := range ev.Scores {
		if (s.Label == "anomalous") != (s.Score >= 0.6) {
			t.Errorf("%s: label %s at score %v", s.Path, s.Label, s.Score)
		}
		switch {
		case s.Score >= 0.6 && s.Abnormal:
			tp++
		case s.Score >= 0.6:
			fp++
		case s.Abnormal:
			fn++
		default:
			tn++
		}
	}
	a := ev.At
	if [4]int{a.TP, a.FP, a.TN, a.FN} != [4]int{tp, fp, tn, fn} || a.Threshold != 0.6 {
		t.Errorf("at threshold %+v, counted TP %d FP %d TN %d FN %d", a, tp, fp, tn, fn)
	}
	if math.Abs(a.Sensitivity-float64(tp)/float64(tp+fn)) > 1e-12 || math.Abs(a.Specificity-float64(tn)/float64(tn+fp)) > 1e-12 ||
		math.Abs(a.F1-2*float64(tp)/float64(2*tp+fp+fn)) > 1e-12 {
		t.Errorf("rates %+v", a)
	}
	if ev.PixelAUPRO == nil || !(*ev.PixelAUPRO > 0 && *ev.PixelAUPRO <= 1) || a.PixelDice == nil {
		t.Errorf("pixel AUPRO %v", ev.PixelAUPRO)
	}
	if ev.Provenance.SHA256 != sha256hex(mustRead(t, ck)) || ev.Provenance.Origin != "given with --threshold" || ev.Provenance.Shots != 8 || ev.Provenance.Version == "" ||
		ev.Provenance.Epochs != 4 || ev.Provenance.ImageSize != 112 || ev.Provenance.Seed == nil || ev.ScoredBy != "anomaly map" ||
		ev.Provenance.Preset != "tiny" || ev.Provenance.Digest != nil || ev.Provenance.WrittenBy != "madclip "+version {
		t.Errorf("provenance %+v", ev.Provenance)
	}
	// How the model was built and trained, and its calibration.
	if pv := ev.Provenance; pv.Model.ImageSize != 112 || len(pv.Model.Layers) != 4 || pv.Training == nil || pv.Training.Data != root || pv.Training.Batch != 16 ||
		!(pv.Training.LR > 0) || !(pv.Youden > 0 && pv.Youden < 1) || pv.Calibration == nil || pv.Calibration.Normal == 0 {
		t.Errorf("provenance's model, training and calibration %+v", pv)
	}
	// --threshold youden labels at the checkpoint's Youden point.
	youden := ev.Provenance.Youden
	o, e, code = madclip(t, nil, "eval", "--checkpoint", ck, "--data", root, "--json", "--threshold", "youden", "--device", "cpu")
	ev.At.Threshold = 0
	if err := json.Unmarshal([]byte(o), &ev); code != 0 || err != nil || ev.At.Threshold != youden || !strings.HasPrefix(ev.Provenance.Origin, "Youden point on ") {
		t.Errorf("--threshold youden: exit %d, %v, threshold %v (%s), want %v: %s", code, err, ev.At.Threshold, ev.Provenance.Origin, youden, e)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// bench on synthetic data with the tiny preset: a table with our numbers for
// both synthetic datasets, the missing ones skipped, and JSON results.
func TestBenchCLI(t *testing.T) {
	root, _ := trained(t)
	// No --work and a $TMPDIR that does not exist: the variable is named.
	_, e, code := madclip(t, []string{"TMPDIR=/nonexistent-madclip-tmp"}, "bench", "--data", root, "--preset", "tiny", "--shots", "2", "--seeds", "1", "--epochs", "1",
		"--image-size", "56", "--datasets", "Brain")
	wantFailure(t, "a temporary work folder in /nonexistent-madclip-tmp ($TMPDIR", e, code)
	js := filepath.Join(t.TempDir(), "results.json")
	o, e, code := madclip(t, nil, "bench", "--data", root, "--preset", "tiny", "--shots", "2", "--seeds", "2", "--epochs", "1",
		"--image-size", "56", "--json-out", js, "--device", "cpu")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	if !strings.Contains(o, "| shots | Brain AC | Brain AS | Chest AC |") || !strings.Contains(o, "| 2 | ") {
		t.Errorf("table: %s", o)
	}
	if !strings.Contains(e, "Liver: not under") {
		t.Errorf("missing datasets not noted: %s", e)
	}
	// The paper's 2-shot numbers beside ours.
	if !strings.Contains(o, "(paper 93.93)") || !strings.Contains(o, "(paper 84.56)") {
		t.Errorf("paper numbers missing: %s", o)
	}
	type result struct {
		Dataset    string   `json:"dataset"`
		ShotsFile  string   `json:"shots_file"`
		ImageAUROC float64  `json:"image_auroc"`
		ImageAP    *float64 `json:"image_ap"`
		PixelAP    *float64 `json:"pixel_ap"`
		At         *struct {
			TP, FP, TN, FN int
		} `json:"at_threshold"`
		TrainSec   float64 `json:"train_seconds"`
		Provenance struct {
			Checkpoint *string `json:"checkpoint"`
			SHA256     string  `json:"checkpoint_sha256"`
		} `json:"provenance"`
	}
	var res []result
	b, _ := os.ReadFile(js)
	if err := json.Unmarshal(b, &res); err != nil || len(res) != 4 {
		t.Errorf("results.json: %d results (%v)", len(res), err)
	}
	// The authors' fixed lists by default (the paper's protocol); no path
	// into the temporary folder that is gone, but each checkpoint's digest.
	for _, r := range res {
		if r.ShotsFile != "authors:"+r.Dataset+"/my2-shot.txt" {
			t.Errorf("%s: shots from %q", r.Dataset, r.ShotsFile)
		}
		if p := r.Provenance; p.Checkpoint != nil || len(p.SHA256) != 64 {
			t.Errorf("%s: checkpoint %v, SHA-256 %q without --work", r.Dataset, p.Checkpoint, p.SHA256)
		}
		// eval's metrics under eval's names; times to the millisecond.
		if r.ImageAP == nil || (r.PixelAP == nil) != (r.Dataset == "Chest") || r.At == nil || r.At.TP+r.At.FP+r.At.TN+r.At.FN == 0 || !(r.TrainSec > 0) ||
			math.Abs(r.TrainSec*1000-math.Round(r.TrainSec*1000)) > 1e-6 {
			t.Errorf("%s: metrics and times %+v", r.Dataset, r)
		}
	}
	// The cross-dataset setting: train on Brain, test on Chest; --work keeps
	// the checkpoint, and --json names it.
	work := filepath.Join(t.TempDir(), "work")
	o, e, code = madclip(t, nil, "bench", "--data", root, "--preset", "tiny", "--shots", "2", "--seeds", "1", "--epochs", "1",
		"--image-size", "56", "--cross", "Brain:Chest", "--device", "cpu", "--work", work, "--json")
	if code != 0 || strings.Contains(o, "±") {
		t.Errorf("cross: exit %d %s %s", code, o, e)
	}
	res = nil
	if err := json.Unmarshal([]byte(o), &res); err != nil || len(res) != 1 || res[0].Dataset != "Chest" || res[0].Provenance.Checkpoint == nil {
		t.Fatalf("cross --json: %v %s", err, o)
	}
	if ck := *res[0].Provenance.Checkpoint; filepath.Dir(ck) != work {
		t.Errorf("kept checkpoint %s not in %s", ck, work)
	} else if _, err := os.Stat(ck); err != nil {
		t.Errorf("kept checkpoint: %v", err)
	}
	// --draw-shots draws; --cross paper names Table 3's targets (absent here).
	o, e, code = madclip(t, nil, "bench", "--data", root, "--preset", "tiny", "--shots", "2", "--seeds", "1", "--epochs", "1",
		"--image-size", "56", "--datasets", "Chest", "--draw-shots", "--json-out", js, "--device", "cpu")
	if b, _ := os.ReadFile(js); code != 0 || strings.Contains(string(b), "authors:") {
		t.Errorf("--draw-shots: exit %d %s %s", code, b, e)
	}
	_, e, code = madclip(t, nil, "bench", "--data", root, "--preset", "tiny", "--shots", "16", "--cross", "paper")
	wantFailure(t, "none of the pairs Chest:NIHChest", e, code)
	// Chest is here, its targets are not: the note names only what is
	// missing, and which pair goes.
	if !strings.Contains(e, "NIHChest: not under "+root+", so Chest → NIHChest is skipped") ||
		!strings.Contains(e, "Retina_OCT2017 and OCTDL: neither is under") || strings.Contains(e, "Chest or") {
		t.Errorf("Table 3's targets not named: %s", e)
	}
	// An ablation runs through the protocol, and the note names it.
	o, e, code = madclip(t, nil, "bench", "--data", root, "--preset", "tiny", "--shots", "2", "--seeds", "1", "--epochs", "1",
		"--image-size", "56", "--datasets", "Brain", "--common-head", "--device", "cpu", "-q")
	if code != 0 || !strings.Contains(o, "ablation: common head") || !strings.Contains(o, "Scored: each run's last epoch;") {
		t.Errorf("bench --common-head: exit %d %s %s", code, o, e)
	}
	// --select-on-valid selects each run's epoch on held-out valid images:
	// the table says so, the JSON records the setting and the epoch kept.
	o, e, code = madclip(t, nil, "bench", "--data", root, "--preset", "tiny", "--shots", "2", "--seeds", "1", "--epochs", "2",
		"--image-size", "56", "--datasets", "Brain", "--select-on-valid", "--device", "cpu", "--json-out", js)
	var sel []struct {
		Settings struct {
			SelectOnValid bool `json:"select_on_valid"`
		} `json:"settings"`
		Provenance struct {
			SelectedEpoch   int      `json:"selected_epoch"`
			ValidAUROC      *float64 `json:"valid_auroc"`
			ValidPixelAUROC *float64 `json:"valid_pixel_auroc"`
		} `json:"provenance"`
	}
	b, _ = os.ReadFile(js)
	if err := json.Unmarshal(b, &sel); err != nil || code != 0 || len(sel) != 1 || !strings.Contains(o, "Scored: each run's best epoch on its held-out valid images") ||
		!strings.Contains(e, "Brain, 2 shots, seed 1 (kept epoch ") {
		t.Fatalf("bench --select-on-valid: exit %d %v %s %s", code, err, o, e)
	}
	// Shots that would take every abnormal valid image are refused before
	// any training (synthetic Brain has 22).
	_, e, code = madclip(t, nil, "bench", "--data", root, "--preset", "tiny", "--shots", "2,22", "--datasets", "Brain", "--select-on-valid")
	wantFailure(t, "22 shots take every abnormal one, leaving none to select on", e, code)
	// Shots a valid split cannot give are refused up front too, flag or not.
	_, e, code = madclip(t, nil, "bench", "--data", root, "--preset", "tiny", "--shots", "2,30", "--datasets", "Brain", "--draw-shots")
	wantFailure(t, "has 23 normal and 22 abnormal images: too few for 30 shots of each; give fewer --shots", e, code)
	if s := sel[0]; !s.Settings.SelectOnValid || s.Provenance.SelectedEpoch < 1 || s.Provenance.SelectedEpoch > 2 || s.Provenance.ValidAUROC == nil || s.Provenance.ValidPixelAUROC == nil {
		t.Errorf("bench --select-on-valid recorded %+v", s)
	}
	// A dataset of the user's own needs its object word, asked for before
	// any training; --object gives it, for one trained dataset only.
	own := t.TempDir()
	if err := os.Symlink(filepath.Join(root, "Brain_AD"), filepath.Join(own, "Knee_AD")); err != nil {
		t.Fatal(err)
	}
	kneeBench := []string{"bench", "--data", own, "--datasets", "Knee", "--preset", "tiny", "--shots", "2", "--seeds", "1", "--epochs", "1", "--image-size", "56", "--device", "cpu"}
	_, e, code = madclip(t, nil, kneeBench...)
	wantFailure(t, `no object word for dataset "Knee", which is not one of the benchmark's`, e, code)
	if strings.Contains(e, "training") {
		t.Errorf("the missing word was found after training began: %s", e)
	}
	if o, e, code = madclip(t, nil, append(kneeBench, "--object", "knee MRI", "--json")...); code != 0 || !strings.Contains(o, `"dataset": "Knee"`) {
		t.Errorf("bench --object: exit %d %s %s", code, o, e)
	}
	_, e, code = madclip(t, nil, "bench", "--data", root, "--datasets", "Brain,Chest", "--preset", "tiny", "--object", "knee MRI")
	wantFailure(t, "--object is one dataset's object word, but this bench trains on Brain, Chest", e, code)
	// An empty test image is found from its header before any training.
	bad := t.TempDir()
	if _, e, code := madclip(t, nil, "synth", "--out", bad, "--datasets", "Brain", "--valid", "4", "--test", "2", "--size", "32"); code != 0 {
		t.Fatal(e)
	}
	empty := filepath.Join(bad, "Brain_AD", "test", "good", "img", "001.png")
	os.WriteFile(empty, nil, 0o644)
	_, e, code = madclip(t, nil, "bench", "--data", bad, "--datasets", "Brain", "--preset", "tiny", "--shots", "2", "--seeds", "1", "--epochs", "1", "--image-size", "56")
	wantFailure(t, empty+": empty file, not an image", e, code)
	if strings.Contains(e, "training") {
		t.Errorf("an empty test image found after training began: %s", e)
	}
	_, e, code = madclip(t, nil, "bench", "--data", root, "--preset", "tiny", "--shots", "x")
	wantFailure(t, "--shots", e, code)
	_, e, code = madclip(t, nil, "bench", "--data", t.TempDir(), "--preset", "tiny", "--shots", "2")
	wantFailure(t, "none of the benchmark's datasets (Brain, Liver", e, code)
}

// Bad data for train and eval: one-line errors naming the file.
func TestTrainEvalBadData(t *testing.T) {
	root := t.TempDir()
	if _, e, code := madclip(t, nil, "synth", "--out", root, "--valid", "2", "--test", "2", "--size", "32"); code != 0 {
		t.Fatal(e)
	}
	valid := filepath.Join(root, "Brain_AD", "valid")
	ck := filepath.Join(t.TempDir(), "x.safetensors")
	args := []string{"train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--epochs", "1", "--shots", "2",
		"--image-size", "56", "--out", ck, "--device", "cpu"}
	// A mask of another size than its image, among the shots (the authors'
	// 2-shot list).
	shots, err := dataset.AuthorsShots("Brain", 2)
	if err != nil {
		t.Fatal(err)
	}
	mask := filepath.Join(valid, "Ungood", "anomaly_mask", shots.Abnormal[0])
	small, _ := imaging.Load(mask)
	writeGrayPNG(t, mask, small.Luma().ResizeNearest(8, 8))
	_, e, code := madclip(t, nil, args...)
	wantFailure(t, mask, e, code)
	// A corrupt image among the shots.
	img := filepath.Join(valid, "good", "img", shots.Normal[0])
	os.WriteFile(img, []byte("\x89PNG\r\n\x1a\n broken"), 0o644)
	_, e, code = madclip(t, nil, args...)
	wantFailure(t, img, e, code)
	if _, err := os.Stat(ck); err == nil {
		t.Error("checkpoint written despite bad data")
	}
	// eval with an unwritable report folder.
	_, trained := trained(t)
	_, e, code = madclip(t, nil, "eval", "--checkpoint", trained, "--data", trainedRoot, "--report", "/proc/no/report")
	wantFailure(t, "/proc/no/report", e, code)
}

func writeGrayPNG(t *testing.T, path string, m *imaging.Gray) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	png.Encode(f, m.Image())
	f.Close()
}

// The note under a hard case's picture tells a failure from a near miss.
func TestCaseNote(t *testing.T) {
	for _, c := range []struct {
		abnormal bool
		score    float64
		want     string
	}{
		{true, 0.3, "truly abnormal: missed"}, {true, 0.5, "truly abnormal: labelled right"},
		{false, 0.5, "truly normal: false alarm"}, {false, 0.49, "truly normal: labelled right"},
	} {
		if got := caseNote(c.abnormal, c.score, 0.5); got != c.want {
			t.Errorf("abnormal %v, score %v: %q, want %q", c.abnormal, c.score, got, c.want)
		}
	}
}

// A flat image (a blank or failed export) is scored, with a note saying
// what it is; a scan gets no such note.
func TestPredictFlatImageNote(t *testing.T) {
	root, ck := trained(t)
	dir := t.TempDir()
	for name, c := range map[string]color.RGBA{"white.png": {255, 255, 255, 255}, "red.png": {255, 0, 0, 255}} {
		img := image.NewRGBA(image.Rect(0, 0, 40, 30))
		draw.Draw(img, img.Bounds(), &image.Uniform{c}, image.Point{}, draw.Src)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, img)
		f.Close()
	}
	scan := filepath.Join(root, "Brain_AD", "test", "good", "img", "001.png")
	o, e, code := madclip(t, nil, "predict", dir, scan, "--checkpoint", ck, "--device", "cpu", "-q")
	if code != 0 || strings.Count(o, "\n") != 3 {
		t.Fatalf("exit %d: %s %s", code, o, e)
	}
	for _, want := range []string{"white.png is one flat colour (RGB 255, 255, 255)", "red.png is one flat colour (RGB 255, 0, 0)"} {
		if !strings.Contains(e, want) {
			t.Errorf("no note %q: %s", want, e)
		}
	}
	if strings.Contains(e, "001.png is one flat") {
		t.Errorf("a scan called flat: %s", e)
	}
	// A folder of blanks names the first few, then counts the rest.
	many := t.TempDir()
	white, err := os.ReadFile(filepath.Join(dir, "white.png"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range maxFlatNotes + 3 {
		if err := os.WriteFile(filepath.Join(many, fmt.Sprintf("blank%d.png", i)), white, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, e, code = madclip(t, nil, "predict", many, "--checkpoint", ck, "--device", "cpu", "-q")
	if code != 0 || strings.Count(e, "is one flat colour") != maxFlatNotes || !strings.Contains(e, "note: 3 more images of one flat colour, not named") {
		t.Errorf("a folder of %d blanks: exit %d, stderr %s", maxFlatNotes+3, code, e)
	}
}

// predict from image file to score, detection score and map, against an
// independent PIL + PyTorch pipeline (testdata/reference_predict.py) on the
// same weights and checkpoint: decoding, resizing, no mean/std, the taps,
// the adapters, the per-layer averages and the map's maximum as the score.
func TestPredictMatchesPyTorch(t *testing.T) {
	py := reftest.Python(t, "torch", "numpy", "PIL")
	dir := t.TempDir()
	weights := tinyWeights(t, dir)
	data := filepath.Join(dir, "data")
	if _, e, code := madclip(t, nil, "synth", "--out", data, "--valid", "2", "--test", "2"); code != 0 {
		t.Fatal(e)
	}
	ck := filepath.Join(dir, "ck.safetensors")
	if _, e, code := madclip(t, nil, "train", "--data", data, "--dataset", "Brain", "--weights", weights, "--epochs", "1",
		"--shots", "2", "--image-size", "56", "--out", ck, "--quiet", "--device", "cpu"); code != 0 {
		t.Fatal(e)
	}
	var cases []map[string]string
	var got []prediction
	var maps [][]float32
	for i, img := range []string{"test/Ungood/img/000.png", "test/good/img/000.png"} {
		path := filepath.Join(data, "Brain_AD", img)
		raw := filepath.Join(dir, fmt.Sprintf("map%d.npy", i))
		o, e, code := madclip(t, nil, "predict", path, "--checkpoint", ck, "--weights", weights, "--json", "--raw-map", raw, "--device", "cpu")
		if code != 0 {
			t.Fatal(e)
		}
		var pr prediction
		if err := json.Unmarshal([]byte(o), &pr); err != nil {
			t.Fatalf("%v: %q", err, o)
		}
		_, m := readNPY(t, raw)
		cases, got, maps = append(cases, map[string]string{"path": path}), append(got, pr), append(maps, m)
	}
	js, _ := json.Marshal(cases)
	out, err := exec.Command(py, filepath.Join("testdata", "reference_predict.py"), weights, ck, string(js)).Output()
	if err != nil {
		t.Fatalf("reference_predict.py: %v", err)
	}
	var want []struct {
		Score    float64   `json:"score"`
		DetScore float64   `json:"det_score"`
		Map      []float64 `json:"map"`
	}
	if err := json.Unmarshal(out, &want); err != nil || len(want) != len(cases) {
		t.Fatalf("reference output %v: %.200s", err, out)
	}
	for i, w := range want {
		if math.Abs(got[i].Score-w.Score) > 1e-5 || math.Abs(got[i].DetScore-w.DetScore) > 1e-5 {
			t.Errorf("%s: score %.7f, det %.7f; PyTorch %.7f, %.7f", cases[i]["path"], got[i].Score, got[i].DetScore, w.Score, w.DetScore)
		}
		if len(maps[i]) != len(w.Map) || len(w.Map) != 56*56 {
			t.Fatalf("map of %d values, PyTorch %d", len(maps[i]), len(w.Map))
		}
		worst := 0.0
		for j, v := range w.Map {
			worst = math.Max(worst, math.Abs(float64(maps[i][j])-v))
		}
		if worst > 1e-5 {
			t.Errorf("%s: the map differs from PyTorch's by up to %g", cases[i]["path"], worst)
		}
	}
	if math.Abs(got[0].Score-got[1].Score) < 1e-6 {
		t.Error("both images got the same score; the test cannot tell them apart")
	}
}
