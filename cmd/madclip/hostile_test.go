package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"madclip/authorship"
	"madclip/bench"
	"madclip/checkpoint"
	"madclip/infer"
	"madclip/internal/cliptest"
	"madclip/internal/reftest"
	"madclip/internal/testimages"
	"madclip/torch"
	"madclip/torch/safetensors"
)

// bombJPEG is a real 16×16 JPEG whose frame header is patched to claim
// 65000×65000 pixels.
func bombJPEG(t *testing.T) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, image.NewGray(image.Rect(0, 0, 16, 16)), nil); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	i := bytes.Index(data, []byte{0xff, 0xc0})
	if i < 0 {
		t.Fatal("no SOF0 marker")
	}
	binary.BigEndian.PutUint16(data[i+5:], 65000) // height
	binary.BigEndian.PutUint16(data[i+7:], 65000) // width
	return data
}

// damagedJPEG is a real 64×64 JPEG whose compressed data is cut in half
// and closed with EOI: libjpeg warns and fills the rest in grey.
func damagedJPEG(t *testing.T) []byte {
	var b bytes.Buffer
	img := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	data := b.Bytes()
	sos := bytes.Index(data, []byte{0xff, 0xda})
	start := sos + 2 + int(binary.BigEndian.Uint16(data[sos+2:]))
	return append(append([]byte(nil), data[:start+(len(data)-2-start)/2]...), 0xff, 0xd9)
}

// rewriteCheckpoint copies src to dst through edit, which may change the
// metadata and the tensors' bytes.
func rewriteCheckpoint(t *testing.T, src, dst string, edit func(meta map[string]any, ts []safetensors.Tensor)) {
	t.Helper()
	f, err := safetensors.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ts := make([]safetensors.Tensor, len(f.Tensors))
	for i, x := range f.Tensors {
		ts[i] = x
		ts[i].Data = append([]byte(nil), x.Data...)
	}
	var meta map[string]any
	if err := json.Unmarshal([]byte(f.Metadata["madclip"]), &meta); err != nil {
		t.Fatal(err)
	}
	edit(meta, ts)
	js, _ := json.Marshal(meta)
	md := map[string]string{}
	for k, v := range f.Metadata {
		md[k] = v
	}
	md["madclip"] = string(js)
	if err := safetensors.WriteFile(dst, ts, md); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256hex(b)
}

// TestHostileInputs replays malformed and hostile inputs through the
// binary: each ends in a one-line error naming the file or flag and a
// non-zero exit, and no input is changed.
func TestHostileInputs(t *testing.T) {
	root, ck := trained(t)
	dir := t.TempDir()
	good := filepath.Join(root, "Brain_AD", "test", "good", "img", "000.png")
	scan := filepath.Join(dir, "scan.png")
	raw, _ := os.ReadFile(good)
	os.WriteFile(scan, raw, 0o644)
	bomb := filepath.Join(dir, "bomb.png")
	os.WriteFile(bomb, testimages.PNGClaiming(100000, 100000), 0o644)
	jbomb := filepath.Join(dir, "bomb.jpg")
	os.WriteFile(jbomb, bombJPEG(t), 0o644)
	damaged := filepath.Join(dir, "damaged.jpg")
	os.WriteFile(damaged, damagedJPEG(t), 0o644)
	// A strip of 1×4M pixels: decodable, but resizing it to 112² as PIL
	// does would take gigabytes.
	strip := filepath.Join(dir, "strip.png")
	var stripPNG bytes.Buffer
	png.Encode(&stripPNG, image.NewGray(image.Rect(0, 0, 1, 4_000_000)))
	os.WriteFile(strip, stripPNG.Bytes(), 0o644)
	sd := filepath.Join(dir, "sd.pt")
	os.WriteFile(sd, []byte("PK\x03\x04 a torch.save zip"), 0o644)
	emptyZip := filepath.Join(dir, "empty-zip.pt")
	os.WriteFile(emptyZip, append([]byte("PK\x05\x06"), make([]byte, 18)...), 0o644)
	nanCk := filepath.Join(dir, "nan.safetensors")
	rewriteCheckpoint(t, ck, nanCk, func(_ map[string]any, ts []safetensors.Tensor) {
		binary.LittleEndian.PutUint32(ts[0].Data, math.Float32bits(float32(math.NaN())))
	})
	// Finite but huge: the model overflows to NaN on every image.
	hugeCk := filepath.Join(dir, "huge.safetensors")
	rewriteCheckpoint(t, ck, hugeCk, func(_ map[string]any, ts []safetensors.Tensor) {
		for i := range ts {
			if strings.HasSuffix(ts[i].Name, "fc1.weight") {
				for j := 0; j < len(ts[i].Data); j += 4 {
					binary.LittleEndian.PutUint32(ts[i].Data[j:], math.Float32bits(1e30))
				}
			}
		}
	})
	// Copies of the checkpoint, at names another output could take.
	ckCopy := func(name string) string {
		p := filepath.Join(dir, name)
		b, _ := os.ReadFile(ck)
		os.WriteFile(p, b, 0o644)
		return p
	}
	ckAsJSON, ckAsNPY, ckAsPth := ckCopy("ck-json.safetensors"), ckCopy("ck.npy"), ckCopy("ck2.pth")
	badPreset := filepath.Join(dir, "preset.safetensors")
	rewriteCheckpoint(t, ck, badPreset, func(m map[string]any, _ []safetensors.Tensor) {
		m["backbone"].(map[string]any)["preset"] = "huge"
	})
	devZero := filepath.Join(dir, "devzero.safetensors")
	rewriteCheckpoint(t, ck, devZero, func(m map[string]any, _ []safetensors.Tensor) {
		b := m["backbone"].(map[string]any)
		delete(b, "preset")
		b["weights_file"], b["weights_sha256"] = "/dev/zero", strings.Repeat("ab", 32)
	})
	editMeta := func(name string, edit func(m map[string]any)) string {
		p := filepath.Join(dir, name)
		rewriteCheckpoint(t, ck, p, func(m map[string]any, _ []safetensors.Tensor) { edit(m) })
		return p
	}
	newer := editMeta("newer.safetensors", func(m map[string]any) { m["version"] = "99.0" })
	unversioned := editMeta("unversioned.safetensors", func(m map[string]any) { delete(m, "version") })
	twiceTapped := editMeta("layers.safetensors", func(m map[string]any) { m["model"].(map[string]any)["layers"] = []int{1, 1} })
	badLossSum := editMeta("losssum.safetensors", func(m map[string]any) { m["epoch_loss_sum"] = 3.5 }) // with no step taken
	negativeLoss := editMeta("negloss.safetensors", func(m map[string]any) {                            // losses are not negative
		m["epoch_loss_sum"], m["epoch_loss_steps"], m["step"], m["epoch"] = -1.5, 1, 1, 3 // one step into the last epoch
	})
	badElapsed := editMeta("elapsed.safetensors", func(m map[string]any) { m["elapsed_seconds"] = -2 })
	shortDigest := editMeta("short-digest.safetensors", func(m map[string]any) {
		b := m["backbone"].(map[string]any)
		delete(b, "preset")
		b["weights_file"], b["weights_digest"] = "/w/clip.safetensors", "abc12"
	})
	twoBackbones := editMeta("two.safetensors", func(m map[string]any) {
		b := m["backbone"].(map[string]any)
		b["weights_file"], b["weights_digest"] = "/etc/passwd", strings.Repeat("ab", 32)
	})
	// Inputs that would block a reader forever, and outputs that lead to
	// inputs through links.
	fifo := filepath.Join(dir, "fifo.png")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	testImage := filepath.Join(root, "Brain_AD", "test", "good", "img", "001.png")
	validImage := filepath.Join(root, "Brain_AD", "valid", "good", "img", "00250_60.png")
	ckLinked := filepath.Join(dir, "linked-report")
	os.MkdirAll(ckLinked, 0o755)
	os.Symlink(ck, filepath.Join(ckLinked, "report.json"))
	imgLinked := filepath.Join(dir, "linked-roc")
	os.MkdirAll(imgLinked, 0o755)
	os.Symlink(testImage, filepath.Join(imgLinked, "roc_image.png"))
	outLink := filepath.Join(dir, "out.safetensors")
	os.Symlink(validImage, outLink)
	// CLIP weights whose final layer norm is NaN.
	nanWeights := filepath.Join(dir, "nan-clip.safetensors")
	cliptest.WriteTinyNaN(t, nanWeights, 5, "ln_final.weight")
	dangling := filepath.Join(dir, "dangling.png")
	os.Symlink("nowhere.png", dangling)
	emptyFile := filepath.Join(dir, "empty.png")
	os.WriteFile(emptyFile, nil, 0o644)
	newline := filepath.Join(dir, "two\nlines.png")
	os.WriteFile(newline, []byte("not an image"), 0o644)
	// A report whose failures folder is the test images, and an earlier
	// failure picture that links to a test image.
	intoData := filepath.Join(dir, "into-data")
	os.MkdirAll(intoData, 0o755)
	os.Symlink(filepath.Dir(testImage), filepath.Join(intoData, "failures"))
	oldFailure := filepath.Join(dir, "old-failure")
	os.MkdirAll(filepath.Join(oldFailure, "failures"), 0o755)
	os.Symlink(testImage, filepath.Join(oldFailure, "failures", "abnormal-low_0.415_000.png"))
	// A link to another dataset's images.
	otherLinked := filepath.Join(dir, "other-dataset")
	os.Symlink(filepath.Join(root, "Chest_AD", "test", "good"), otherLinked)
	// A shots file naming a normal image among the abnormal shots.
	goods, _ := filepath.Glob(filepath.Join(root, "Brain_AD", "valid", "good", "img", "*"))
	wrongClass := filepath.Join(dir, "wrong-class.txt")
	os.WriteFile(wrongClass, []byte("n-0: "+filepath.Base(goods[0])+"\na-0: "+filepath.Base(goods[1])+"\n"), 0o644)
	// A failures folder that links elsewhere, holding a file named like a
	// failure picture.
	linkedFailures := filepath.Join(dir, "linked-failures")
	elsewhere := filepath.Join(dir, "elsewhere")
	os.MkdirAll(linkedFailures, 0o755)
	os.MkdirAll(elsewhere, 0o755)
	precious := filepath.Join(elsewhere, "normal-high_0.5_001.png")
	os.WriteFile(precious, []byte("precious"), 0o644)
	os.Symlink(elsewhere, filepath.Join(linkedFailures, "failures"))
	// Weights kept in bench's work folder under a run's checkpoint name.
	work := filepath.Join(dir, "work")
	os.MkdirAll(work, 0o755)
	workWeights := filepath.Join(work, "Brain-2shot-seed1.safetensors") // real weights, by the name of a run's checkpoint
	if err := os.Rename(tinyWeights(t, t.TempDir()), workWeights); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "w2"), 0o755)
	// Outputs that are links to a scan of a dataset the command does not
	// read, and a heatmap onto such a scan.
	chestScan := filepath.Join(root, "Chest_AD", "test", "good", "img", "000.png")
	linkTo := func(name string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.Symlink(chestScan, p)
		return p
	}
	trainToChest := linkTo("to-chest.safetensors")
	reportToChest := linkTo(filepath.Join("report-to-chest", "report.json"))
	jsonToChest := linkTo("to-chest.json")
	workToChest := linkTo(filepath.Join("work-to-chest", "Brain-2shot-seed1.safetensors"))
	// Datasets whose {name}_AD name a link hides: ds3/Brain_AD links to a
	// folder called real, and ds4/Brain_AD/test links to a folder called
	// split.
	real := filepath.Join(dir, "real")
	os.MkdirAll(filepath.Join(real, "test", "good", "img"), 0o755)
	realScan := filepath.Join(real, "test", "good", "img", "000.png")
	os.WriteFile(realScan, raw, 0o644)
	os.MkdirAll(filepath.Join(dir, "ds3"), 0o755)
	os.Symlink(real, filepath.Join(dir, "ds3", "Brain_AD"))
	split := filepath.Join(dir, "split")
	os.MkdirAll(filepath.Join(split, "good", "img"), 0o755)
	splitScan := filepath.Join(split, "good", "img", "000.png")
	os.WriteFile(splitScan, raw, 0o644)
	os.MkdirAll(filepath.Join(dir, "ds4", "Brain_AD", "valid"), 0o755)
	os.Symlink(split, filepath.Join(dir, "ds4", "Brain_AD", "test"))
	vocabLink := filepath.Join(dir, "cv", "bpe_simple_vocab_16e6.txt.gz")
	os.MkdirAll(filepath.Dir(vocabLink), 0o755)
	os.Symlink(filepath.Join(dir, "ds3", "Brain_AD", "test", "good", "img", "000.png"), vocabLink)
	before := map[string]string{precious: fileSum(t, precious), realScan: fileSum(t, realScan), splitScan: fileSum(t, splitScan), scan: fileSum(t, scan), ck: fileSum(t, ck), testImage: fileSum(t, testImage), validImage: fileSum(t, validImage), workWeights: fileSum(t, workWeights),
		chestScan: fileSum(t, chestScan)}
	// Files of the user's at outputs' paths: none is madclip's to replace.
	var plain bytes.Buffer // a PNG another program wrote: no mark
	png.Encode(&plain, image.NewGray(image.Rect(0, 0, 8, 8)))
	theirs := map[string][]byte{"theirs.png": plain.Bytes(), "notes.safetensors": []byte("my notes"), "mine.json": []byte(`{"mine": true}`),
		"numpy.npy": append([]byte("\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }"+strings.Repeat(" ", 60)+"\n"), 0, 0, 0x80, 0x3f)}
	for name, b := range theirs {
		p := filepath.Join(dir, name)
		os.WriteFile(p, b, 0o644)
		before[p] = fileSum(t, p)
	}
	eval := []string{"eval", "--checkpoint", ck, "--data", root, "--device", "cpu"}
	train := []string{"train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--shots", "2", "--epochs", "1", "--image-size", "56"}
	bench := []string{"bench", "--data", root, "--datasets", "Brain", "--preset", "tiny", "--shots", "2", "--seeds", "1", "--epochs", "1", "--image-size", "56"}

	predict := []string{"predict", "--checkpoint", ck, "--device", "cpu"}
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"huge PNG header", append(predict, bomb), "over the limit"},
		{"a strip too long to resize", append(predict, strip), strip + ": a 1×4000000 image is too elongated to resize to 112×112"},
		{"huge JPEG header", append(predict, jbomb), "over the limit"},
		{"JPEG with damaged data", append(predict, damaged), "damaged.jpg: damaged JPEG (Corrupt JPEG data: premature end of data segment); --damaged-jpeg decodes it anyway"},
		{"huge PNG in clip", []string{"clip", "--weights", tinyWeights(t, dir), "--image", bomb, "--text", "a"}, "over the limit"},
		{"heatmap onto its scan", append(predict, scan, "--heatmap", scan), "refusing to overwrite an input"},
		{"raw map onto the checkpoint", append(predict, scan, "--raw-map", ck), "the --checkpoint file"},
		{"heatmap onto a device", append(predict, scan, "--heatmap", "/dev/null"), "not a regular file"},
		{"heatmap over the user's picture", append(predict, scan, "--heatmap", filepath.Join(dir, "theirs.png")), "theirs.png: it exists and madclip did not write it"},
		{"raw map over a file NumPy wrote", append(predict, scan, "--raw-map", filepath.Join(dir, "numpy.npy")), "numpy.npy: it exists and madclip did not write it"},
		{"train --out over the user's file", append(train, "--out", filepath.Join(dir, "notes.safetensors")), "notes.safetensors: it exists and madclip did not write it"},
		{"bench --json-out over the user's JSON", append(bench, "--json-out", filepath.Join(dir, "mine.json")), "mine.json: it exists and madclip did not write it"},
		{"convert over the user's file", []string{"weights", "convert", tinyWeights(t, dir), filepath.Join(dir, "notes.safetensors")}, "notes.safetensors: it exists and madclip did not write it"},
		{"bench --json-out over a checkpoint", append(bench, "--json-out", ckAsJSON), "it holds a madclip checkpoint; refusing to replace it with a JSON report"},
		{"raw map over a checkpoint", append(predict, scan, "--raw-map", ckAsNPY), "it holds a madclip checkpoint; refusing to replace it with a NumPy array"},
		{"export over a checkpoint", []string{"export", "authors", ck, ckAsPth}, "it holds a madclip checkpoint; refusing to replace it with a torch.save archive"},
		{"convert over a checkpoint", []string{"weights", "convert", tinyWeights(t, dir), ckAsPth}, "it holds a madclip checkpoint; refusing to replace it with CLIP weights"},
		{"NaN threshold", append(predict, scan, "--threshold", "NaN"), "--threshold NaN"},
		{"threshold above 1", append(predict, scan, "--threshold", "5"), "--threshold 5"},
		{"NaN in the checkpoint", []string{"predict", "--checkpoint", nanCk, scan}, "NaN"},
		{"huge parameters in the checkpoint", []string{"predict", "--checkpoint", hugeCk, scan}, "far beyond any trained value"},
		{"huge parameters exported", []string{"export", "authors", hugeCk, filepath.Join(dir, "huge.pth")}, "far beyond any trained value"},
		{"unknown preset in the metadata", []string{"predict", "--checkpoint", badPreset, scan}, `unknown backbone preset "huge"`},
		{"weights file /dev/zero", []string{"predict", "--checkpoint", devZero, scan}, "/dev/zero"},
		{"torch.save file as a checkpoint", []string{"predict", "--checkpoint", sd, scan}, "a PyTorch file"},
		{"weights and preset", []string{"train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--weights", ck, "--out", filepath.Join(dir, "o.safetensors")}, "--weights and --preset"},
		{"shots and shots file", []string{"train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--shots", "2", "--shots-file", sd, "--out", filepath.Join(dir, "o.safetensors")}, "--shots-file"},
		{"layer twice", []string{"train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--layers", "1", "--layers", "1", "--out", filepath.Join(dir, "o.safetensors")}, "--layers lists block 1 twice"},
		{"train onto the shots file", []string{"train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--shots-file", scan, "--out", scan}, "refusing to overwrite an input"},
		{"train into a missing folder", []string{"train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--out", "/proc/none/x.safetensors"}, "/proc/none/x.safetensors"},
		{"convert onto itself", []string{"weights", "convert", ck, ck}, "refusing to overwrite an input"},
		{"convert with a bad vocab", []string{"weights", "convert", "--vocab", scan, ck, filepath.Join(dir, "w.safetensors")}, "--vocab"},
		{"checkpoint from a newer madclip", []string{"predict", "--checkpoint", newer, scan}, "newer than this one"},
		{"checkpoint without a version", []string{"predict", "--checkpoint", unversioned, scan}, "no version"},
		{"a layer tapped twice in the metadata", []string{"predict", "--checkpoint", twiceTapped, scan}, "layer 1 is tapped twice"},
		{"a short weights digest in the metadata", []string{"predict", "--checkpoint", shortDigest, scan}, `its weights digest "abc12" (5 characters) is not a SHA-256`},
		{"a preset and a weights file in the metadata", []string{"predict", "--checkpoint", twoBackbones, scan}, "two backbones"},
		{"a loss sum without steps in the metadata", []string{"predict", "--checkpoint", badLossSum, scan}, "loss sum of 3.5 over 0 of 0 steps"},
		{"a negative loss sum in the metadata", []string{"predict", "--checkpoint", negativeLoss, scan}, "loss sum of -1.5"},
		{"a negative elapsed time in the metadata", []string{"predict", "--checkpoint", badElapsed, scan}, "elapsed time -2 s"},
		{"named pipe as an image", append(predict, fifo), "it is a named pipe"},
		{"named pipe as the vocab", []string{"tokenize", "--vocab", fifo, "hi"}, "it is a named pipe"},
		{"named pipe as the shots file", []string{"train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--shots-file", fifo, "-q", "--out", filepath.Join(dir, "o.safetensors")}, "the shots file " + fifo + ": it is a named pipe"},
		{"report.json linked to the checkpoint", append(eval, "--report", ckLinked), "refusing to overwrite an input"},
		{"report plot linked to a test image", append(eval, "--report", imgLinked), "an input image"},
		{"dataset outside the root", append(eval, "--dataset", "../x"), "without a path"},
		{"train --out linked to a valid image", append(train, "--out", outLink), "an input image"},
		{"bench --json-out onto a test image", append(bench, "--json-out", testImage), "madclip writes nothing into a dataset"},
		{"bench --json-out onto a device", append(bench, "--json-out", "/dev/full"), "not a regular file"},
		{"bench with weights and a preset", append(bench, "--weights", ck), "--weights and --preset"},
		{"bench shot count twice", []string{"bench", "--data", root, "--preset", "tiny", "--shots", "2,2"}, "--shots lists 2 twice"},
		{"bench malformed pair", append(bench, "--cross", "a:b:c"), `bad --cross "a:b:c"`},
		{"infinite learning rate", append(train, "--lr", "Inf", "--out", filepath.Join(dir, "o.safetensors")), "--lr +Inf"},
		{"huge learning rate", append(train, "--lr", "1e30", "--out", filepath.Join(dir, "o.safetensors")), "--lr 1e+30"},
		{"learning rate below the smallest float", append(train, "--lr", "1e-400", "--out", filepath.Join(dir, "o.safetensors")), "--lr reads as 0"},
		{"zero learning rate", append(train, "--lr", "0", "--out", filepath.Join(dir, "o.safetensors")), "--lr reads as 0"},
		{"learning rate below float32's range", append(train, "--lr", "1e-46", "--out", filepath.Join(dir, "o.safetensors")), "--lr 1e-46 is below the smallest normal float32"},
		{"zero pixel limit", append(predict, scan, "--max-pixels", "0"), "predict: --max-pixels 0: want a positive number"},
		{"empty heatmap path", append(predict, scan, "--heatmap", ""), "--heatmap is empty"},
		{"unknown flag", append(predict, scan, "--bogus"), "see madclip predict --help"},
		{"a number beyond float64", append(predict, scan, "--threshold", "1e400"), "--threshold 1e400: scores run from 0 to 1"},
		{"a word for a threshold", append(predict, scan, "--threshold", "best"), "--threshold best: give a score in [0, 1], f1 or youden (see madclip predict --help)"},
		{"newline in a file name", append(predict, newline), `two\nlines.png`},
		{"huge PNG under a raised limit", append(predict, bomb, "--max-pixels", "10000000000"), "of memory"},
		{"report failures into the test images", append(eval, "--report", intoData), "madclip writes nothing into a dataset"},
		{"earlier failure picture linked to a test image", append(eval, "--report", oldFailure), "an input image"},
		{"shot of the wrong class", []string{"train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--epochs", "1", "--image-size", "56", "-q", "--shots-file", wrongClass, "--out", filepath.Join(dir, "o.safetensors")}, "wrong-class.txt: shot"},
		{"report failures folder linked elsewhere", append(eval, "--report", linkedFailures), "failures is a link"},
		{"report inside another dataset", append(eval, "--report", filepath.Join(root, "Chest_AD", "test", "good", "img")), "Chest_AD: madclip writes nothing into a dataset"},
		{"report through a link into another dataset", append(eval, "--report", filepath.Join(otherLinked, "r")), "Chest_AD: madclip writes nothing into a dataset"},
		{"train --out into a folder that cannot be written", append(train, "--out", "/proc/x.safetensors"), "cannot create files in /proc: "},
		{"bench work folder holding the weights", []string{"bench", "--data", root, "--datasets", "Brain", "--shots", "2", "--seeds", "1", "--weights", workWeights, "--work", work}, "the --weights file"},
		{"bench --json-out onto a run's checkpoint", append(bench, "--work", filepath.Join(dir, "w2"), "--json-out", filepath.Join(dir, "w2", "Brain-2shot-seed1.safetensors")), "has the name of a safetensors file, but it gets a JSON file"},
		{"bench work folder inside the dataset", append(bench, "--work", filepath.Dir(testImage)), "madclip writes nothing into a dataset"},
		{"train --out inside the dataset", append(train, "--out", filepath.Join(filepath.Dir(validImage), "ck.safetensors")), "madclip writes nothing into a dataset"},
		{"missing required flag", []string{"eval", "--checkpoint", ck, "--json"}, "eval: --data is required"},
		{"beta1 of 1", append(train, "--beta1", "1", "--out", filepath.Join(dir, "o.safetensors")), "--beta1 1"},
		{"train dataset given as a path", []string{"train", "--data", root, "--dataset", "../x/Brain", "--preset", "tiny", "--out", filepath.Join(dir, "o.safetensors")}, "without a path"},
		{"eval where the dataset is missing", []string{"eval", "--checkpoint", ck, "--data", filepath.Join(dir, "nothing-here"), "--device", "cpu"}, "Brain_AD"},
		{"flag without its value after an argument", append(predict, scan, "--heatmap"), "--heatmap needs a value"},
		{"unknown flag", append(predict, scan, "--bogus"), "predict: unknown flag --bogus (see madclip predict --help)"},
		{"unknown letter flag", append(predict, scan, "-z"), "predict: unknown flag -z (see madclip predict --help)"},
		{"an object word with a line break", append(train, "--object", "knee\nMRI", "--out", filepath.Join(dir, "obj.safetensors")), `train: --object "knee\nMRI": the object word holds a control character`},
		{"an object word too long for the prompts", append(train, "--object", strings.Repeat("knee ", 70), "--out", filepath.Join(dir, "obj.safetensors")), "more than CLIP's 77-token context; give a shorter word"},
		{"a mistyped flag", append(predict, scan, "--threshhold", "0.3"), "predict: unknown flag --threshhold: did you mean --threshold? (see madclip predict --help)"},
		{"a flag of another command", []string{"bench", "--data", root, "--dataset", "Brain"}, "bench: unknown flag --dataset: did you mean --datasets?"},
		{"--out where the output is an argument", []string{"export", "authors", ck, "--out", filepath.Join(dir, "x.pth")}, "export authors: unknown flag --out: the output is an argument here, as in madclip export authors CHECKPOINT OUT.pth"},
		{"a boolean flag's value as an argument", append(train, "--quick-gelu", "false", "--out", filepath.Join(dir, "o.safetensors")), `unexpected argument "false": a boolean flag's value goes after =, as --flag=false`},
		{"an argument to a command that takes none", []string{"doctor", "extra"}, `doctor: unexpected argument "extra": it takes none`},
		{"export onto a scan", []string{"export", "authors", ck, scan}, "has an image's name; give the file a .pth name"},
		{"export onto a scan of its training data", []string{"export", "authors", ck, validImage}, "madclip writes nothing into a dataset"},
		{"export into a dataset", []string{"export", "authors", ck, filepath.Join(filepath.Dir(testImage), "x.pth")}, "madclip writes nothing into a dataset"},
		{"import of a safetensors file", []string{"import", "authors", ck, "--dataset", "Brain", "--preset", "tiny", "--out", filepath.Join(dir, "i.safetensors")}, "a safetensors file, not the zip archive"},
		{"train a dataset that is not there", []string{"train", "--data", root, "--dataset", "Nope", "--preset", "tiny", "--out", filepath.Join(dir, "o.safetensors")}, "dataset Nope: no folder " + filepath.Join(root, "Nope_AD")},
		{"weights for a preset's checkpoint", append(predict, scan, "--weights", filepath.Join(dir, "nosuch.safetensors")), "which needs no weights file: leave out"},
		{"unknown preset", []string{"train", "--data", root, "--dataset", "Brain", "--preset", "huge", "--out", filepath.Join(dir, "o.safetensors")}, "--preset huge: unknown (known: ViT-B/16, ViT-B/32, ViT-L/14, ViT-L/14-336, tiny)"},
		{"bench of a dataset that is not there", []string{"bench", "--data", root, "--datasets", "Nope", "--preset", "tiny"}, "the dataset Nope is not under " + root},
		{"download with a SHA-256 but no URL", []string{"weights", "download", "--sha256", strings.Repeat("ab", 32), "ViT-B/32"}, "--sha256 goes with --url"},
		{"train --out linked to another dataset's scan", append(train, "-q", "--out", trainToChest), "(a link to " + chestScan + ") is inside the dataset folder"},
		{"report.json linked to another dataset's scan", append(eval, "--report", filepath.Dir(reportToChest)), "(a link to " + chestScan + ") is inside the dataset folder"},
		{"bench --json-out linked to another dataset's scan", append(bench, "--json-out", jsonToChest), "(a link to " + chestScan + ") is inside the dataset folder"},
		{"bench checkpoint linked to another dataset's scan", append(bench, "--work", filepath.Dir(workToChest)), "(a link to " + chestScan + ") is inside the dataset folder"},
		{"heatmap onto a scan that is not an input", append(predict, scan, "--heatmap", chestScan), "Chest_AD: madclip writes nothing into a dataset"},
		{"convert into a dataset", []string{"weights", "convert", ck, filepath.Join(root, "Chest_AD", "w.safetensors")}, "Chest_AD: madclip writes nothing into a dataset"},
		{"convert to an image's name", []string{"weights", "convert", ck, filepath.Join(dir, "w.png")}, "has an image's name; give the file a .safetensors name"},
		{"bench --json-out with an image's name", append(bench, "--json-out", filepath.Join(dir, "r.png")), "has an image's name; give the file a .json name"},
		{"export to a safetensors name", []string{"export", "authors", ck, filepath.Join(dir, "Brain.safetensors")}, "has the name of a safetensors file, but it gets a torch.save archive; give the file a .pth name"},
		{"train --out with a .pth name", append(train, "-q", "--out", filepath.Join(dir, "o.pth")), "has the name of a torch.save archive, but it gets a safetensors file; give the file a .safetensors name"},
		{"convert a scan", []string{"weights", "convert", scan, filepath.Join(dir, "w.safetensors")}, "scan.png: a PNG image, not a PyTorch file"},
		{"convert a zip without data.pkl", []string{"weights", "convert", emptyZip, filepath.Join(dir, "w.safetensors")}, "empty-zip.pt: a zip archive, but not one torch.save or TorchScript writes (no data.pkl)"},
		{"export into a folder that does not exist", []string{"export", "authors", ck, filepath.Join(dir, "nowhere", "x.pth")}, "its folder " + filepath.Join(dir, "nowhere") + " does not exist"},
		{"train --out naming a folder", append(train, "-q", "--out", filepath.Join(dir, "o.safetensors")+"/"), "names a folder; give a file's name"},
		{"eval --report making a dataset's split", append(eval, "--report", filepath.Join(dir, "New_AD", "test", "rep")), "a folder with a dataset's name"},
		{"bench --work making a dataset's folder", append(bench, "-q", "--work", filepath.Join(dir, "W_AD")), "W_AD would be made, a folder with a dataset's name"},
		{"a '..' out of a folder that is not there", append(predict, scan, "--heatmap", filepath.Join(dir, "nonexist")+"/../hm/"), "does not lead to a folder"},
		{"export to a .npy name", []string{"export", "authors", ck, filepath.Join(dir, "x.npy")}, "has the name of a NumPy array"},
		{"convert a truncated zip", []string{"weights", "convert", sd, filepath.Join(dir, "w.safetensors")}, "sd.pt: a zip archive whose end is missing"},
		{"bench --work where nothing can be made", append(bench, "-q", "--work", "/proc/1"), "--work: cannot create files in /proc/1"},
		{"convert to a .pt name", []string{"weights", "convert", ck, filepath.Join(dir, "w.PT")}, "has the name of a torch.save archive"},
		{"synth into a dataset folder", []string{"synth", "--out", filepath.Join(root, "Chest_AD"), "-q"}, "is a dataset folder"},
		{"a flag as a file's value", append(predict, scan, "--raw-map", "--json"), "--raw-map --json: that looks like a flag, not a value"},
		{"a short flag as a file's value", append(train, "--out", "-q"), "--out -q: that looks like a flag, not a value"},
		{"bench --json-out at the work folder", append(bench, "--work", filepath.Join(dir, "w3"), "--json-out", filepath.Join(dir, "w3")), "is the --work folder"},
		{"a heatmap with a JPEG's name", append(predict, scan, "--heatmap", filepath.Join(dir, "h.jpg")), "it writes a png file; give it a .png name"},
		{"a raw map with an image's name", append(predict, scan, "--raw-map", filepath.Join(dir, "r.png")), "it writes a npy file; give it a .npy name"},
		{"help as a file's value", append(predict, scan, "--raw-map", "-h"), "--raw-map -h: that looks like a flag"},
		{"an unknown flag as a file's value", append(predict, scan, "--heatmap", "--nonexistent"), "--heatmap --nonexistent: that looks like a flag"},
		{"a switch given twice, contradicting itself", append(train, "--draw-shots=true", "--draw-shots=false", "--out", filepath.Join(dir, "o.safetensors")), "--draw-shots is given twice"},
		{"a flag as a list's value", []string{"clip", "--weights", tinyWeights(t, dir), "--image", "-q", "--text", "a"}, "--image -q: that looks like a flag"},
		{"import for a dataset given as a path", []string{"import", "authors", sd, "--dataset", "../x", "--object", "x", "--preset", "tiny", "--out", filepath.Join(dir, "i.safetensors")}, "without a path"},
		{"import for a dataset with a newline", []string{"import", "authors", sd, "--dataset", "a\nb", "--object", "x", "--preset", "tiny", "--out", filepath.Join(dir, "i.safetensors")}, "control character"},
		{"heatmap into a dataset whose folder is a link", append(predict, scan, "--heatmap", filepath.Join(dir, "ds3", "Brain_AD", "test", "good", "img", "000.png")), "ds3/Brain_AD: madclip writes nothing into a dataset"},
		{"train --out into a split that a dataset links to", []string{"train", "--data", filepath.Join(dir, "ds4"), "--dataset", "Brain", "--preset", "tiny", "--out", filepath.Join(split, "good", "ck.safetensors")}, "ds4/Brain_AD: madclip writes nothing into a dataset"},
		{"vocab copy linked through a linked dataset", []string{"weights", "convert", "--vocab", vocabFile, ck, filepath.Join(dir, "cv", "x.safetensors")}, "ds3/Brain_AD: madclip writes nothing into a dataset"},
		{"one image given twice", append(predict, scan, filepath.Join(filepath.Dir(scan), ".", "scan.png"), "--heatmap", filepath.Join(dir, "h2")+"/"), "are the same image; give it once"},
		{"an empty argument", append(predict, scan, ""), "argument 2 is empty"},
		{"import of an empty name", []string{"import", "authors", "", "--dataset", "Brain", "--preset", "tiny", "--out", filepath.Join(dir, "i.safetensors")}, "import authors: the IN.pth name is empty"},
		{"export of an empty name", []string{"export", "authors", "", filepath.Join(dir, "e.pth")}, "export authors: the CHECKPOINT name is empty"},
		{"export to an empty name", []string{"export", "authors", ck, ""}, "export authors: the OUT.pth name is empty"},
		{"a link to nothing", append(predict, dangling), dangling + ": a symbolic link to nowhere.png, which does not exist"},
		{"an empty ground truth", append(predict, scan, "--panel", filepath.Join(dir, "p.png"), "--ground-truth", emptyFile), emptyFile + ": empty file, not an image"},
		{"block 0", append(train, "--layers", "0", "--out", filepath.Join(dir, "o.safetensors")), "--layers 0: blocks count from 1"},
		{"an unknown subcommand", []string{"weights", "nonexist"}, `weights: unknown command "nonexist" (see madclip weights --help)`},
		{"a mistyped command", []string{"trian"}, `unknown command "trian" (did you mean train?)`},
		{"train on a dataset not there (no stage announced before)", []string{"train", "--data", root, "--dataset", "Liver", "--preset", "tiny", "--out", filepath.Join(dir, "o.safetensors")}, "dataset Liver: no folder"},
		{"export to a file named like a flag", []string{"export", "authors", ck, "-"}, "OUT.pth -: that looks like a flag, not a file's name (give ./- for a file so named)"},
		{"words after --version", []string{"--version", "extra"}, `--version takes nothing after it: "extra" would be ignored`},
		{"words after version", []string{"version", "extra"}, `version: unexpected argument "extra": it takes none`},
		{"a checkpoint as CLIP weights", []string{"clip", "--weights", ck, "--image", scan, "--text", "a"}, "a madclip checkpoint (a trained model), not CLIP weights"},
		{"a checkpoint as train's weights (before the shots)", []string{"train", "--data", root, "--dataset", "Brain", "--weights", ck, "--out", filepath.Join(dir, "o.safetensors")}, "--weights " + ck + ": a madclip checkpoint (a trained model), not CLIP weights"},
		{"a checkpoint to convert", []string{"weights", "convert", ck, filepath.Join(dir, "converted.safetensors")}, "load " + ck + ": a madclip checkpoint (a trained model), not CLIP weights: predict and eval take it with --checkpoint"},
		{"CLIP weights as a checkpoint", []string{"predict", "--checkpoint", tinyWeights(t, dir), scan}, "CLIP weights, not a madclip checkpoint"},
		{"a scan as a checkpoint", []string{"predict", "--checkpoint", scan, scan}, "scan.png: a PNG image, not a safetensors file"},
		{"a CSV with a missing checkpoint", []string{"predict", "--checkpoint", filepath.Join(dir, "none.safetensors"), scan, "--csv"}, "none.safetensors"},
		{"help on a mistyped subcommand", []string{"help", "weights", "lst"}, `help: unknown command "lst" (did you mean list?) (see madclip weights --help)`},
		{"help after a command on a mistyped subcommand", []string{"weights", "help", "lst"}, `help: unknown command "lst" (did you mean list?) (see madclip weights --help)`},
		{"a flag before its command", []string{"--quiet", "train"}, "--quiet goes after the command: madclip train --quiet"},
		{"a word for a number", []string{"train", "--epochs", "abc"}, "train: --epochs abc: not a number"},
		{"a negative number for a count", []string{"train", "--seed", "-1"}, "train: --seed -1: a negative number; it takes 0 or more"},
		{"a file name that starts with a dash", []string{"predict", "-x.png", "--checkpoint", ck}, "predict: unknown flag -x.png: a file of that name is given as ./-x.png"},
		{"a word for a switch", []string{"predict", "--json=maybe", "x.png"}, `--json is a switch: give it alone, or as --json=true or --json=false, not "maybe"`},
		{"all among bench's datasets", []string{"bench", "--data", root, "--datasets", "all,Brain", "--preset", "tiny"}, "all stands alone"},
		{"a cross pair of one dataset", []string{"bench", "--data", root, "--cross", "Brain:Brain", "--preset", "tiny"}, "that is --datasets Brain"},
		{"CLIP weights that give NaN", []string{"clip", "--weights", nanWeights, "--image", scan, "--text", "a"}, "the weights " + nanWeights + ": the model produced NaN"},
		{"CLIP weights holding NaN, clip --json", []string{"clip", "--weights", nanWeights, "--image", scan, "--text", "a", "--json"}, "tensor ln_final.weight holds NaN or infinite values: the file is corrupt"},
		{"an empty clip text", []string{"clip", "--weights", tinyWeights(t, dir), "--image", scan, "--text", " "}, "is empty; give words"},
		{"a text longer than CLIP reads", []string{"clip", "--weights", tinyWeights(t, dir), "--image", scan, "--text", strings.Repeat("brain ", 80)}, "82 tokens with its start and end marks; CLIP reads at most 77"},
		{"synth dataset twice", []string{"synth", "--out", filepath.Join(dir, "s"), "--datasets", "Brain,Brain", "-q"}, "listed twice"},
		{"all among synth's datasets", []string{"synth", "--out", filepath.Join(dir, "s"), "--datasets", "all,Brain", "-q"}, "all stands alone"},
	}
	if torch.CUDADeviceCount() == 0 {
		cases = append(cases, struct {
			name string
			args []string
			want string
		}{"cuda on a CPU build", append(predict[:len(predict)-1], "cuda", scan), "sees no GPU"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o, e, code := madclip(t, nil, c.args...)
			wantFailure(t, c.want, e, code)
			if n := strings.Count(strings.TrimSpace(e), "\n"); n > 0 {
				t.Errorf("%d lines on stderr, want one: %q", n+1, e)
			}
			if o != "" {
				t.Errorf("standard output holds %q", o)
			}
			if strings.Contains(e, ".tmp-") || strings.Contains(e, "probe") {
				t.Errorf("the message names a temporary file: %q", e)
			}
		})
	}
	for p, sum := range before {
		if fileSum(t, p) != sum {
			t.Errorf("%s was changed", p)
		}
	}
	if st, err := os.Lstat("/dev/null"); err != nil || st.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("/dev/null is no longer a device")
	}
	if _, err := os.Stat(filepath.Join(dir, "w.safetensors")); err == nil {
		t.Error("weights convert wrote OUT despite a bad --vocab")
	}
}

// TestPredictOutputs: outputs of inputs with one file name get distinct
// names mirroring their folders; a replaced file keeps its mode; CSV cells
// cannot run as formulas; a bad file among good ones costs only itself;
// stdout errors fail the command.
func TestPredictOutputs(t *testing.T) {
	root, ck := trained(t)
	dir := t.TempDir()
	raw, _ := os.ReadFile(filepath.Join(root, "Brain_AD", "test", "good", "img", "000.png"))
	var jb bytes.Buffer
	im, _, _ := image.Decode(bytes.NewReader(raw))
	jpeg.Encode(&jb, im, nil)
	for _, p := range []string{"dA/x.png", "dB/x.png", "dB/=cmd.png"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755)
		os.WriteFile(filepath.Join(dir, p), raw, 0o644)
	}
	os.WriteFile(filepath.Join(dir, "dB/x.jpg"), jb.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "dA/bad.png"), []byte("\x89PNG\r\n\x1a\nbroken"), 0o644)
	heat := filepath.Join(dir, "heat")
	os.MkdirAll(filepath.Join(heat, "dA"), 0o755)
	kept := filepath.Join(heat, "dA", "x_heatmap.png") // an earlier run's
	var old bytes.Buffer
	authorship.EncodePNG(&old, image.NewGray(image.Rect(0, 0, 4, 4)))
	os.WriteFile(kept, old.Bytes(), 0o600)

	o, e, code := madclip(t, nil, "predict", filepath.Join(dir, "dA"), filepath.Join(dir, "dB"), "--checkpoint", ck, "--heatmap", heat, "--json", "--device", "cpu")
	wantFailure(t, "bad.png", e, code)
	var got []prediction
	for _, line := range strings.Split(strings.TrimSpace(o), "\n") {
		var p prediction
		if err := json.Unmarshal([]byte(line), &p); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		got = append(got, p)
	}
	want := map[string]string{
		"dA/x.png":    "heat/dA/x_heatmap.png",
		"dB/x.png":    "heat/dB/x_png_heatmap.png",
		"dB/x.jpg":    "heat/dB/x_jpg_heatmap.png",
		"dB/=cmd.png": "heat/dB/=cmd_heatmap.png",
	}
	if len(got) != len(want) {
		t.Fatalf("%d results, want %d (every readable image): %s", len(got), len(want), o)
	}
	for _, p := range got {
		rel, _ := filepath.Rel(dir, string(p.Path))
		hm, _ := filepath.Rel(dir, string(p.Heatmap))
		if want[rel] != hm {
			t.Errorf("%s: heatmap %s, want %s", rel, hm, want[rel])
		}
		if _, err := os.Stat(string(p.Heatmap)); err != nil {
			t.Errorf("%s: %v", rel, err)
		}
	}
	if st, err := os.Stat(kept); err != nil || st.Mode().Perm() != 0o600 || func() bool { b, _ := os.ReadFile(kept); return bytes.Equal(b, old.Bytes()) }() {
		t.Errorf("replaced heatmap: %v %v, want a new file with mode 0600", st, err)
	}

	// A folder holding one image, or an output ending in "/", names an
	// output folder (created); one image's output named as a file must be
	// in an existing folder.
	one := filepath.Join(dir, "one")
	os.MkdirAll(one, 0o755)
	os.WriteFile(filepath.Join(one, "y.png"), raw, 0o644)
	_, e, code = madclip(t, nil, "predict", one, "--checkpoint", ck, "--heatmap", filepath.Join(dir, "h1"), "--mask", filepath.Join(dir, "m1")+"/", "--device", "cpu")
	for _, p := range []string{"h1/y_heatmap.png", "m1/y_mask.png"} {
		if _, err := os.Stat(filepath.Join(dir, p)); code != 0 || err != nil {
			t.Errorf("folder of one image: exit %d, %s: %v %s", code, p, err, e)
		}
	}
	_, e, code = madclip(t, nil, "predict", filepath.Join(one, "y.png"), "--checkpoint", ck, "--panel", filepath.Join(dir, "p1")+"/", "--heatmap", filepath.Join(dir, "y-heat.png"), "--device", "cpu")
	for _, p := range []string{"p1/y_panel.png", "y-heat.png"} {
		if _, err := os.Stat(filepath.Join(dir, p)); code != 0 || err != nil {
			t.Errorf("one image, a folder and a file output: exit %d, %s: %v %s", code, p, err, e)
		}
	}
	_, e, code = madclip(t, nil, "predict", filepath.Join(one, "y.png"), "--checkpoint", ck, "--heatmap", filepath.Join(dir, "nofolder", "y.png"), "--device", "cpu")
	wantFailure(t, "its folder "+filepath.Join(dir, "nofolder")+" does not exist", e, code)
	_, e, code = madclip(t, nil, "predict", one, "--checkpoint", ck, "--heatmap", filepath.Join(dir, "y-heat.png"), "--device", "cpu")
	wantFailure(t, "y-heat.png is a file, but for a folder of images", e, code)
	_, e, code = madclip(t, nil, "predict", one, "--checkpoint", ck, "--raw-map", filepath.Join(dir, "maps.npy"), "--device", "cpu")
	wantFailure(t, "maps.npy has a file's name, but for a folder of images or several images it names the folder of their outputs (made if need be); give a folder's name, as "+filepath.Join(dir, "maps")+"/ (or "+filepath.Join(dir, "maps.npy")+"/ if that is meant)", e, code)
	if _, err := os.Stat(filepath.Join(dir, "maps.npy")); err == nil {
		t.Error("a folder named maps.npy was made")
	}

	// Inputs from a dataset's folder and from elsewhere: the mirrored
	// dataset folder is renamed so that the outputs never look like a
	// dataset, and the same command runs again.
	inData := filepath.Join(root, "Brain_AD", "test", "good", "img", "000.png")
	for run := 0; run < 2; run++ {
		_, e, code = madclip(t, nil, "predict", inData, filepath.Join(one, "y.png"), "--checkpoint", ck, "--mask", filepath.Join(dir, "mm")+"/", "--device", "cpu")
		if code != 0 {
			t.Fatalf("run %d: a dataset's scan beside another: exit %d: %s", run, code, e)
		}
	}
	var made []string
	filepath.WalkDir(filepath.Join(dir, "mm"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			made = append(made, p)
		}
		return nil
	})
	if len(made) != 2 || !strings.Contains(made[0]+made[1], string(filepath.Separator)+"Brain_AD_out"+string(filepath.Separator)+"test") {
		t.Errorf("mirrored outputs %q, want one under Brain_AD_out/test", made)
	}

	// CSV: a cell that would start with "=" (the image given by its
	// relative name) is neutralised with an apostrophe; a full path is not
	// touched.
	csvRows := func(dir string, args ...string) [][]string {
		cmd := exec.Command(madclipBin, append([]string{"predict", "--checkpoint", ck, "--csv", "--device", "cpu"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "MADCLIP_WEIGHTS="+t.TempDir(), "XDG_CACHE_HOME="+t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("predict --csv: %v", err)
		}
		rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
		if err != nil || len(rows) != 2 {
			t.Fatalf("CSV %q: %v", out, err)
		}
		return rows
	}
	if rows := csvRows(filepath.Join(dir, "dB"), "=cmd.png"); rows[1][0] != "'=cmd.png" {
		t.Errorf("formula-like cell %q, want '=cmd.png", rows[1][0])
	}
	if full := filepath.Join(dir, "dB", "=cmd.png"); csvRows(dir, full)[1][0] != full {
		t.Errorf("a full path was changed")
	}
	rel := csvSafe("=1+2", "-0.5", "+x", "@a", "plain")
	if rel[0] != "'=1+2" || rel[1] != "-0.5" || rel[2] != "'+x" || rel[3] != "'@a" || rel[4] != "plain" {
		t.Errorf("csvSafe %q", rel)
	}

	// Standard output that cannot be written is an error.
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip("no /dev/full:", err)
	}
	defer full.Close()
	for _, args := range [][]string{
		{"predict", filepath.Join(dir, "dA", "x.png"), "--checkpoint", ck, "--json", "--device", "cpu"},
		{"doctor"}, {"doctor", "--json"}, {"tokenize", "a brain"}, {"predict", "--help"}, {"--version"},
	} {
		cmd := exec.Command(madclipBin, args...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = full, &stderr
		err = cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() == 0 {
			t.Errorf("%s > /dev/full: %v", strings.Join(args, " "), err)
		}
		wantFailure(t, "no space left", stderr.String(), 1)
	}
}

// TestEvalReportBeforeStdout: a reader that stops reading (eval … | head)
// kills eval with SIGPIPE, but only once the report is whole; the stages
// after scoring are told on stderr.
func TestEvalReportBeforeStdout(t *testing.T) {
	root, ck := trained(t)
	report := filepath.Join(t.TempDir(), "report")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cmd := exec.Command(madclipBin, "eval", "--checkpoint", ck, "--data", root, "--report", report, "--failures", "1", "--device", "cpu")
	cmd.Env = append(os.Environ(), "XDG_CACHE_HOME="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &stderr
	err = cmd.Run()
	w.Close()
	if err == nil {
		t.Fatal("eval into a closed pipe exited 0")
	}
	for _, f := range []string{"report.json", "roc_image.png", "pr_image.png", "roc_pixel.png", "pr_pixel.png"} {
		if _, err := os.Stat(filepath.Join(report, f)); err != nil {
			t.Errorf("%s missing after stdout closed: %v", f, err)
		}
	}
	if !strings.Contains(stderr.String(), "computing the pixel AUROC, AP and AUPRO over ") {
		t.Errorf("no stage line for the pixel metrics: %s", stderr.String())
	}
}

// TestTrainSignalsAndResume: SIGTERM saves a partial checkpoint; --resume
// alone continues it with its own settings and refuses a contradicting
// flag.
func TestTrainSignalsAndResume(t *testing.T) {
	root, _ := trained(t)
	out := filepath.Join(t.TempDir(), "run.safetensors")
	cmd := exec.Command(madclipBin, "train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--epochs", "400",
		"--shots", "2", "--image-size", "56", "--out", out, "--device", "cpu")
	cmd.Env = append(os.Environ(), "MADCLIP_WEIGHTS="+t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), "epoch 1/400") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 128+15 {
		t.Fatalf("SIGTERM: %v, want exit status 143: %s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "--resume") {
		t.Fatalf("no partial checkpoint reported: %s", stderr.String())
	}
	// predict names the point where training stopped as training did.
	where := regexp.MustCompile(`interrupted at (the start of epoch \d+ of 400|epoch \d+ of 400, after its step \d+);`).FindStringSubmatch(stderr.String())
	if where == nil {
		t.Fatalf("train did not say where it stopped: %s", stderr.String())
	}
	_, e, code := madclip(t, nil, "predict", "--checkpoint", out, filepath.Join(root, "Brain_AD", "test", "good", "img", "000.png"))
	wantFailure(t, "training did not finish (interrupted at "+where[1]+"); finish it with madclip train --resume "+out, e, code)
	_, e, code = madclip(t, nil, "train", "--resume", out, "--epochs", "5")
	wantFailure(t, "--epochs 5 contradicts the checkpoint's 400", e, code)
	_, e, code = madclip(t, nil, "train", "--resume", out, "--quick-gelu")
	wantFailure(t, "--quick-gelu true contradicts the checkpoint's false", e, code)
	_, e, code = madclip(t, nil, "train", "--resume", out, "--weights", out)
	wantFailure(t, `--weights: this run trains on the "tiny" preset`, e, code)
	// Resume state edited by hand: a step past the epoch's end, and the
	// optimiser's moments removed.
	dir := filepath.Dir(out)
	farStep := filepath.Join(dir, "far.safetensors")
	rewriteCheckpoint(t, out, farStep, func(m map[string]any, _ []safetensors.Tensor) { m["step"] = 1e9 })
	_, e, code = madclip(t, nil, "train", "--resume", farStep, "-q")
	wantFailure(t, "the checkpoint was altered", e, code)
	noAdam := filepath.Join(dir, "noadam.safetensors")
	f, err := safetensors.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var kept []safetensors.Tensor
	for _, x := range f.Tensors {
		if !strings.HasPrefix(x.Name, "optim.") {
			kept = append(kept, x)
		}
	}
	if len(kept) == len(f.Tensors) {
		t.Fatal("the partial checkpoint holds no optimiser state")
	}
	if err := safetensors.WriteFile(noAdam, kept, f.Metadata); err != nil {
		t.Fatal(err)
	}
	// Optimiser state for a parameter the model does not have.
	bogus := filepath.Join(dir, "bogus.safetensors")
	extra := append([]safetensors.Tensor(nil), f.Tensors...)
	for _, x := range f.Tensors {
		if strings.HasPrefix(x.Name, "optim.m.") {
			x.Name = "optim.m.bogus"
			extra = append(extra, x)
			break
		}
	}
	if err := safetensors.WriteFile(bogus, extra, f.Metadata); err != nil {
		t.Fatal(err)
	}
	// First moments without the second ones.
	halfAdam := filepath.Join(dir, "halfadam.safetensors")
	var half []safetensors.Tensor
	for _, x := range f.Tensors {
		if !strings.HasPrefix(x.Name, "optim.v.") {
			half = append(half, x)
		}
	}
	if err := safetensors.WriteFile(halfAdam, half, f.Metadata); err != nil {
		t.Fatal(err)
	}
	f.Close()
	_, e, code = madclip(t, nil, "train", "--resume", bogus, "-q")
	wantFailure(t, "it holds optimiser state optim.m.bogus for no parameter of the model", e, code)
	_, e, code = madclip(t, nil, "train", "--resume", noAdam, "-q")
	wantFailure(t, "without the optimiser's state", e, code)
	// inspect offers the command to continue only where it would work.
	for ck, want := range map[string]string{out: "; continue it with madclip train --resume " + out + "\n",
		noAdam: "; it cannot be resumed: it was saved after ", farStep: "; it cannot be resumed: its resume state (epoch ",
		halfAdam: "; it cannot be resumed: its optimiser state has optim.m."} {
		if o, e, code := madclip(t, nil, "inspect", ck); code != 0 || !strings.Contains(o, want) {
			t.Errorf("inspect %s: exit %d, %s\nlacks %q:\n%s", filepath.Base(ck), code, e, want, o)
		}
	}
	// The data folder through a link is the same folder, not a contradiction
	// (the next setting's is the one reported).
	dataLink := filepath.Join(t.TempDir(), "data")
	os.Symlink(root, dataLink)
	_, e, code = madclip(t, nil, "train", "--resume", out, "--data", dataLink, "--softmax-loss")
	wantFailure(t, "--softmax-loss true contradicts", e, code)
	_, e, code = madclip(t, nil, "train", "--resume", out, "--dataset", "Chest")
	wantFailure(t, "--dataset Chest", e, code)
	// Data that moved since: the run says so, and takes its new place.
	moved := filepath.Join(dir, "moved.safetensors")
	gone := filepath.Join(dir, "gone")
	rewriteCheckpoint(t, out, moved, func(m map[string]any, _ []safetensors.Tensor) { m["training"].(map[string]any)["data"] = gone })
	_, e, code = madclip(t, nil, "train", "--resume", moved, "-q")
	wantFailure(t, "moved.safetensors: the data this run trained on is not there (no folder "+filepath.Join(gone, "Brain_AD")+"): give --data where it is now", e, code)
	_, e, code = madclip(t, nil, "train", "--resume", moved, "--data", root, "--softmax-loss")
	wantFailure(t, "--softmax-loss true contradicts", e, code)
	// Elsewhere while the recorded folder is there: the shots' SHA-256s
	// decide, and a checkpoint without them keeps its folder.
	elsewhere := t.TempDir()
	if _, e, code := madclip(t, nil, "synth", "--out", elsewhere, "--valid", "2", "--test", "2", "--size", "32"); code != 0 {
		t.Fatal(e)
	}
	_, e, code = madclip(t, nil, "train", "--resume", out, "--data", elsewhere)
	wantFailure(t, "has changed since the run started", e, code)
	if !strings.Contains(e, "data: continuing on "+elsewhere+" (the run started on "+root+"; the shots must be the same files)") {
		t.Errorf("resumed elsewhere without saying so: %s", e)
	}
	unhashed := filepath.Join(dir, "unhashed.safetensors")
	rewriteCheckpoint(t, out, unhashed, func(m map[string]any, _ []safetensors.Tensor) {
		delete(m["shot_images"].(map[string]any), "sha256")
		m["version"] = "0.2.2" // before every checkpoint recorded them
	})
	_, e, code = madclip(t, nil, "train", "--resume", unhashed, "--data", elsewhere, "-q")
	wantFailure(t, "--data "+elsewhere+" contradicts the checkpoint's "+root, e, code)
	// A shot missing where --data points: said, with what to do.
	meta, err := checkpoint.ReadMeta(out)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(elsewhere, "Brain_AD", "valid", "good", "img", meta.ShotImages.Normal[0]))
	_, e, code = madclip(t, nil, "train", "--resume", out, "--data", elsewhere, "-q")
	wantFailure(t, "the shots this run started on are not all in "+filepath.Join(elsewhere, "Brain_AD", "valid")+"; give --data where they are", e, code)
	// A dataset of the benchmark that has masks must keep them.
	noMasks := t.TempDir()
	if _, e, code := madclip(t, nil, "synth", "--out", noMasks, "--valid", "2", "--test", "2", "--size", "32"); code != 0 {
		t.Fatal(e)
	}
	os.RemoveAll(filepath.Join(noMasks, "Brain_AD", "valid", "Ungood", "anomaly_mask"))
	_, e, code = madclip(t, nil, "train", "--data", noMasks, "--dataset", "Brain", "--preset", "tiny", "--shots", "2", "--draw-shots",
		"--image-size", "56", "--out", filepath.Join(t.TempDir(), "m.safetensors"))
	wantFailure(t, "anomaly_mask is missing", e, code)
}

// TestEvalReportIsFresh: a second eval into one report folder removes the
// first run's failure pictures and keeps other files.
func TestEvalReportIsFresh(t *testing.T) {
	root, ck := trained(t)
	report := t.TempDir()
	failures := filepath.Join(report, "failures")
	os.MkdirAll(failures, 0o755)
	stale := filepath.Join(failures, "normal-high_0.999_old.png")
	mine := filepath.Join(failures, "notes.txt")
	var pic bytes.Buffer
	authorship.EncodePNG(&pic, image.NewGray(image.Rect(0, 0, 4, 4)))
	os.WriteFile(stale, pic.Bytes(), 0o644)
	os.WriteFile(mine, []byte("x"), 0o644)
	// A picture of the user's under a failure picture's name is refused
	// before scoring, and kept.
	theirs := filepath.Join(failures, "abnormal-low_0.100_mine.png")
	os.WriteFile(theirs, []byte("x"), 0o644)
	args := []string{"eval", "--checkpoint", ck, "--data", root, "--report", report, "--failures", "1", "--device", "cpu"}
	_, e, code := madclip(t, nil, args...)
	wantFailure(t, theirs+": it exists and madclip did not write it", e, code)
	if _, err := os.Stat(stale); err != nil {
		t.Error("a refused eval removed an earlier picture")
	}
	os.Remove(theirs)
	// A link with a failure picture's name would be neither replaced nor
	// cleared: refused.
	link := filepath.Join(failures, "normal-high_0.900_link.png")
	os.Symlink(stale, link)
	_, e, code = madclip(t, nil, args...)
	wantFailure(t, link+" is a link with a failure picture's name", e, code)
	os.Remove(link)
	// Another eval writing into the folder (its lock held here) is waited
	// for by no one: refused before scoring, the earlier picture kept.
	held, err := os.Open(report)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	_, e, code = madclip(t, nil, args...)
	wantFailure(t, "another madclip eval is writing a report there", e, code)
	if _, err := os.Stat(stale); err != nil {
		t.Error("a refused eval removed an earlier picture")
	}
	held.Close()
	if _, e, code := madclip(t, nil, args...); code != 0 {
		t.Fatal(e)
	}
	// A run that fails after the plan leaves no empty report folder.
	fresh := filepath.Join(t.TempDir(), "new", "report")
	_, e, code = madclip(t, nil, "eval", "--checkpoint", filepath.Join(t.TempDir(), "none.safetensors"), "--data", root, "--report", fresh, "--device", "cpu")
	wantFailure(t, "none.safetensors", e, code)
	if _, err := os.Stat(filepath.Dir(fresh)); err == nil {
		t.Error("a failed eval left its report folder behind")
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("an earlier run's failure picture is still in the report")
	}
	if _, err := os.Stat(mine); err != nil {
		t.Error("a file eval did not write was removed")
	}
	entries, _ := os.ReadDir(failures)
	if len(entries) != 3 { // notes.txt and one failure of each kind
		t.Errorf("failures/ holds %d files, want 3", len(entries))
	}
	// What a rerun removes before it draws its pictures: the earlier
	// report.json and curves, not a file of the user's.
	notes := filepath.Join(report, "notes.json")
	os.WriteFile(notes, []byte("{}"), 0o644)
	if err := withdrawReport(report); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(report)
	if len(left) != 2 { // failures/ and notes.json
		t.Errorf("after withdrawReport the report folder holds %v", left)
	}
}

// TestFailureNamesDistinct: test images that differ only in extension get
// failure pictures of their own, each naming its scan's extension, and a
// name that would still clash (x_png.png beside x.png) gets a number.
func TestFailureNamesDistinct(t *testing.T) {
	_, ck := trained(t)
	root := t.TempDir()
	if _, e, code := madclip(t, nil, "synth", "--out", root, "--datasets", "Brain", "--valid", "2", "--test", "3", "-q"); code != 0 {
		t.Fatal(e)
	}
	good := filepath.Join(root, "Brain_AD", "test", "good", "img")
	raw, err := os.ReadFile(filepath.Join(good, "001.png"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(good, "001.PNG"), raw, 0o644)
	os.WriteFile(filepath.Join(good, "001_png.png"), raw, 0o644)
	// Two scans whose names, as long as a file name may be, differ only at
	// the end: their pictures' names are cut to fit, and stay distinct.
	long := strings.Repeat("b", 240)
	os.WriteFile(filepath.Join(good, long+"1.png"), raw, 0o644)
	os.WriteFile(filepath.Join(good, long+"2.png"), raw, 0o644)
	report := t.TempDir()
	if _, e, code := madclip(t, nil, "eval", "--checkpoint", ck, "--data", root, "--report", report, "--failures", "10", "--device", "cpu"); code != 0 {
		t.Fatal(e)
	}
	normals, _ := filepath.Glob(filepath.Join(report, "failures", "normal-high_*.png"))
	if len(normals) != 7 { // 000, 001.png, 001.PNG, 001_png.png, 002, bbb…1, bbb…2
		t.Fatalf("%d pictures of normal images, want 7: %v", len(normals), normals)
	}
	var twins []string
	for _, n := range normals {
		if len(filepath.Base(n)) > 255 {
			t.Errorf("a picture's name of %d bytes", len(filepath.Base(n)))
		}
		if strings.Contains(n, "_001") {
			twins = append(twins, filepath.Base(n)[strings.LastIndex(filepath.Base(n), "_001"):])
		}
	}
	slices.Sort(twins)
	if !slices.Equal(twins, []string{"_001_PNG.png", "_001_png-2.png", "_001_png.png"}) {
		t.Errorf("the pictures of 001.png, 001.PNG and 001_png.png end in %v", twins)
	}
}

// TestLongOutputNames: a per-image output whose name would be too long to
// create is refused before any work, naming it; one that fits is written,
// however long, its temporary's name cut to fit too.
func TestLongOutputNames(t *testing.T) {
	root, ck := trained(t)
	scan := filepath.Join(root, "Brain_AD", "test", "good", "img", "000.png")
	dir := t.TempDir()
	in := filepath.Join(dir, "in")
	os.Mkdir(in, 0o755)
	raw, err := os.ReadFile(scan)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(in, "000.png"), raw, 0o644)
	os.WriteFile(filepath.Join(in, strings.Repeat("a", 250)+".png"), raw, 0o644)
	heat := filepath.Join(dir, "heat") + "/"
	_, e, code := madclip(t, nil, "predict", in, "--checkpoint", ck, "--heatmap", heat, "--device", "cpu")
	wantFailure(t, "_heatmap.png: its file name is 262 bytes, more than the 255", e, code)
	if _, err := os.Stat(heat); !os.IsNotExist(err) {
		t.Errorf("the output folder was made for a run refused: %v", err)
	}
	named := filepath.Join(dir, strings.Repeat("d", 251)+".png")
	if _, e, code := madclip(t, nil, "predict", scan, "--checkpoint", ck, "--heatmap", named, "--device", "cpu"); code != 0 {
		t.Errorf("a 255-byte output name: %s", e)
	}
}

// TestOutputsBesideInputs: pictures written into the folder of their scans
// are not scored as scans by a later run over the folder, which may write
// them again; a synthetic scan is data, never replaced by a picture.
func TestOutputsBesideInputs(t *testing.T) {
	root, ck := trained(t)
	good := filepath.Join(root, "Brain_AD", "test", "good", "img")
	fo := filepath.Join(t.TempDir(), "fo")
	os.Mkdir(fo, 0o755)
	raw, err := os.ReadFile(filepath.Join(good, "000.png"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(fo, "a.png"), raw, 0o644)
	os.Mkdir(filepath.Join(fo, "sub"), 0o755) // not searched, and said so
	os.WriteFile(filepath.Join(fo, "sub", "b.png"), raw, 0o644)
	for i := range 2 {
		o, e, code := madclip(t, nil, "predict", fo, "--checkpoint", ck, "--heatmap", fo+"/", "--mask", fo+"/", "--device", "cpu")
		if code != 0 || strings.Count(o, "\n") != 1 || (i == 1) != strings.Contains(e, "skipping 2 pictures that madclip drew") ||
			!strings.Contains(e, fo+": not searching its subfolder sub: name it to score its images") {
			t.Errorf("run %d over the folder: exit %d, %q, stderr %s", i+1, code, o, e)
		}
	}
	_, e, code := madclip(t, nil, "predict", filepath.Join(good, "001.png"), "--checkpoint", ck, "--heatmap", filepath.Join(fo, "a.png"), "--device", "cpu")
	wantFailure(t, "it holds a synthetic scan (madclip synth); refusing to replace it", e, code)
	// Named, a picture is scored, with a note that it is no scan.
	o, e, code := madclip(t, nil, "predict", filepath.Join(fo, "a_heatmap.png"), "--checkpoint", ck, "--device", "cpu")
	if code != 0 || strings.Count(o, "\n") != 1 || !strings.Contains(e, "is a picture madclip drew (a heatmap, panel or mask), not a scan") {
		t.Errorf("a heatmap named: exit %d, %q, stderr %s", code, o, e)
	}
}

// TestEvalEmptyMasks: a test split whose masks are all empty still gets its
// image metrics; the pixel metrics are left out with the reason.
func TestEvalEmptyMasks(t *testing.T) {
	_, ck := trained(t)
	root := t.TempDir()
	if _, e, code := madclip(t, nil, "synth", "--out", root, "--datasets", "Brain", "--valid", "2", "--test", "3", "-q"); code != 0 {
		t.Fatal(e)
	}
	masks, _ := filepath.Glob(filepath.Join(root, "Brain_AD", "test", "Ungood", "anomaly_mask", "*.png"))
	if len(masks) != 3 {
		t.Fatalf("%d masks", len(masks))
	}
	for _, m := range masks {
		var b bytes.Buffer
		png.Encode(&b, image.NewGray(image.Rect(0, 0, 64, 64)))
		os.WriteFile(m, b.Bytes(), 0o644)
	}
	o, e, code := madclip(t, nil, "eval", "--checkpoint", ck, "--data", root, "--json", "--device", "cpu", "-q")
	if code != 0 {
		t.Fatal(e)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(o), &got); err != nil {
		t.Fatalf("%v: %q", err, o)
	}
	if _, ok := got["pixel_auroc"]; ok || !strings.Contains(fmt.Sprint(got["no_pixel_metrics"]), "every test mask is empty") {
		t.Errorf("pixel_auroc %v, no_pixel_metrics %v", got["pixel_auroc"], got["no_pixel_metrics"])
	}
	if auc, ok := got["image_auroc"].(float64); !ok || auc < 0 || auc > 1 || got["images"] != 6.0 {
		t.Errorf("image AUROC %v over %v images", got["image_auroc"], got["images"])
	}
}

// TestWeightsFoundByContent: a checkpoint trained on relative --weights
// finds them from another folder, and finds them by digest once they are
// moved into a weights folder under another name; other weights are
// refused.
func TestWeightsFoundByContent(t *testing.T) {
	root, _ := trained(t)
	a, b, store := t.TempDir(), t.TempDir(), t.TempDir()
	w := tinyWeights(t, a)
	cache := t.TempDir()
	run := func(dir string, args ...string) (string, int) {
		cmd := exec.Command(madclipBin, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "MADCLIP_WEIGHTS="+store, "XDG_CACHE_HOME="+cache)
		var e bytes.Buffer
		cmd.Stderr = &e
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return e.String(), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return e.String(), 0
	}
	ck := filepath.Join(a, "ck.safetensors")
	if e, code := run(a, "train", "--data", root, "--dataset", "Brain", "--weights", filepath.Base(w), "--epochs", "1", "--shots", "2",
		"--image-size", "56", "--out", "ck.safetensors", "--quiet", "--device", "cpu"); code != 0 {
		t.Fatal(e)
	}
	// export never writes over the weights the checkpoint names.
	sum := fileSum(t, w)
	e, code := run(b, "export", "authors", ck, w)
	wantFailure(t, "is the weights file: refusing to overwrite an input", e, code)
	if fileSum(t, w) != sum {
		t.Fatal("export replaced the weights")
	}
	scan := filepath.Join(root, "Brain_AD", "test", "good", "img", "000.png")
	if e, code := run(b, "predict", scan, "--checkpoint", ck, "--device", "cpu"); code != 0 {
		t.Fatalf("from another folder: %s", e)
	}
	if err := os.Rename(w, filepath.Join(store, "renamed.safetensors")); err != nil {
		t.Fatal(err)
	}
	if e, code := run(b, "predict", scan, "--checkpoint", ck, "--device", "cpu"); code != 0 || !strings.Contains(e, "note: the checkpoint's weights file "+w+" is not there now; using "+filepath.Join(store, "renamed.safetensors")) {
		t.Fatalf("moved into the weights folder: exit %d, %s", code, e)
	}
	// The provenance names the file used.
	js, _, code := madclip(t, []string{"MADCLIP_WEIGHTS=" + store}, "predict", scan, "--checkpoint", ck, "--device", "cpu", "--json")
	var got struct{ Provenance infer.Provenance }
	if err := json.Unmarshal([]byte(js), &got); code != 0 || err != nil || string(got.Provenance.WeightsFile) != filepath.Join(store, "renamed.safetensors") ||
		!strings.Contains(got.Provenance.Backbone, "renamed.safetensors") {
		t.Errorf("provenance of weights found by digest: exit %d, %v, %+v", code, err, got.Provenance)
	}
	// Weights found by their digest are an input too.
	moved := filepath.Join(store, "renamed.safetensors")
	for _, args := range [][]string{{"predict", scan, "--checkpoint", ck, "--heatmap", moved}, {"export", "authors", ck, moved}} {
		e, code := run(b, args...)
		wantFailure(t, "is the weights file: refusing to overwrite an input", e, code)
	}
	if fileSum(t, moved) != sum {
		t.Fatal("an output replaced the weights found by digest")
	}
	os.Remove(filepath.Join(store, "renamed.safetensors"))
	e, code = run(b, "predict", scan, "--checkpoint", ck, "--device", "cpu")
	wantFailure(t, "give them with --weights", e, code)
}

// TestNonUTF8Names: a scan under a folder whose name is not UTF-8 (Latin-1
// "café") is named byte for byte in predict --json, as Python's
// surrogateescape writes it: json.loads then os.fsencode give the real
// path of the scan and of its heatmap.
func TestNonUTF8Names(t *testing.T) {
	root, ck := trained(t)
	py := reftest.Python(t, "json")
	dir := filepath.Join(t.TempDir(), "caf\xe9")
	os.MkdirAll(dir, 0o755)
	raw, _ := os.ReadFile(filepath.Join(root, "Brain_AD", "test", "good", "img", "000.png"))
	scan := filepath.Join(dir, "scan\xff.png")
	os.WriteFile(scan, raw, 0o644)
	heat := filepath.Join(dir, "heat.png")
	o, e, code := madclip(t, nil, "predict", scan, "--checkpoint", ck, "--json", "--heatmap", heat, "--device", "cpu")
	if code != 0 {
		t.Fatal(e)
	}
	cmd := exec.Command(py, "-c", `import sys, json, os
r = json.loads(sys.stdin.read())
print(os.fsencode(r["path"]).hex(), os.fsencode(r["heatmap"]).hex(), os.path.exists(os.fsencode(r["heatmap"])))`)
	cmd.Stdin = strings.NewReader(o)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s\n%s", err, out, o)
	}
	want := fmt.Sprintf("%x %x True", scan, heat)
	if strings.TrimSpace(string(out)) != want {
		t.Errorf("python reads %s, want %s (JSON %s)", out, want, o)
	}
	// Messages write the bytes that are not UTF-8 as \xNN.
	_, e, code = madclip(t, nil, "predict", filepath.Join(dir, "gone.png"), "--checkpoint", ck, "--device", "cpu")
	wantFailure(t, `caf\xe9/gone.png`, e, code)
	if !utf8.ValidString(e) {
		t.Errorf("stderr is not UTF-8: %q", e)
	}
}

// A bench stopped by SIGTERM exits 143 and leaves no temporary folder.
func TestBenchSignalRemovesItsFolder(t *testing.T) {
	root, _ := trained(t)
	tmp := t.TempDir()
	cmd := exec.Command(madclipBin, "bench", "--data", root, "--datasets", "Brain", "--preset", "tiny", "--epochs", "400",
		"--shots", "2", "--seeds", "1", "--image-size", "56", "--device", "cpu")
	cmd.Env = append(os.Environ(), "MADCLIP_WEIGHTS="+t.TempDir(), "TMPDIR="+tmp)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(stderr.String(), "seed 1: training") && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // into the epochs
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 128+15 {
		t.Fatalf("SIGTERM: %v, want exit status 143: %s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "bench interrupted after 0 finished runs; its temporary folder is removed") {
		t.Errorf("stderr: %s", stderr.String())
	}
	left, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range left {
		t.Errorf("left in the temporary folder: %s", e.Name())
	}
}

// TestBenchKeepsFinishedRuns: a bench stopped in its second run still
// shows and writes the first run's result.
func TestBenchKeepsFinishedRuns(t *testing.T) {
	root, _ := trained(t)
	js := filepath.Join(t.TempDir(), "results.json")
	cmd := exec.Command(madclipBin, "bench", "--data", root, "--datasets", "Brain", "--preset", "tiny", "--epochs", "3",
		"--shots", "2,16", "--seeds", "1", "--image-size", "56", "--device", "cpu", "--json-out", js)
	cmd.Env = append(os.Environ(), "MADCLIP_WEIGHTS="+t.TempDir(), "XDG_CACHE_HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(120 * time.Second)
	for !strings.Contains(stderr.String(), "[1/2 runs") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 128+15 {
		t.Fatalf("SIGTERM: %v, want exit status 143: %s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "bench interrupted after 1 finished run; its temporary folder is removed (1 finished run shown above and in "+js+")") {
		t.Errorf("stderr: %s", stderr.String())
	}
	if !strings.Contains(stdout.String(), "| 2 | ") || strings.Contains(stdout.String(), "| 16 | ") {
		t.Errorf("table of the finished run: %s", stdout.String())
	}
	var res []bench.Result
	b, _ := os.ReadFile(js)
	if err := json.Unmarshal(b, &res); err != nil || len(res) != 1 || res[0].Shots != 2 {
		t.Errorf("--json-out holds %d results (%v): %s", len(res), err, b)
	}
}

// TestFailedRunLeavesNoFolders: output folders predict made before the work
// are removed when the run fails, and a folder that was there stays.
func TestFailedRunLeavesNoFolders(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "in", "a.png"), filepath.Join(dir, "in", "b.png")
	os.MkdirAll(filepath.Dir(a), 0o755)
	writeTestPNG(t, a, 32, 32, 1)
	writeTestPNG(t, b, 32, 32, 2)
	kept := filepath.Join(dir, "kept")
	os.MkdirAll(kept, 0o755)
	missing := filepath.Join(dir, "none.safetensors")
	_, e, code := madclip(t, nil, "predict", a, b, "--checkpoint", missing, "--heatmap", filepath.Join(dir, "new", "heat"), "--mask", filepath.Join(kept, "masks"))
	wantFailure(t, "none.safetensors", e, code)
	// Commands writing one file make no folder for it: a missing one is
	// as often mistyped as new.
	for _, args := range [][]string{
		{"export", "authors", missing, filepath.Join(dir, "new2", "ckpt", "x.pth")},
		{"weights", "convert", a, filepath.Join(dir, "new3", "w.safetensors")},
		{"import", "authors", a, "--dataset", "Brain", "--preset", "tiny", "--out", filepath.Join(dir, "new4", "i.safetensors")},
		{"train", "--data", dir, "--dataset", "Brain", "--preset", "tiny", "--out", filepath.Join(dir, "new5", "ck.safetensors")},
	} {
		_, e, code := madclip(t, nil, args...)
		wantFailure(t, "does not exist", e, code)
	}
	for _, p := range []string{filepath.Join(dir, "new"), filepath.Join(kept, "masks"), filepath.Join(dir, "new2"), filepath.Join(dir, "new3"), filepath.Join(dir, "new4"), filepath.Join(dir, "new5")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left behind by a failed run", p)
		}
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("the folder that was there went: %v", err)
	}
}

// TestPredictStopsOnSignal: SIGTERM during predict over a folder stops
// after the image in hand with exit status 143; every result printed has
// its heatmap, complete, and no temporary is left beside them.
func TestPredictStopsOnSignal(t *testing.T) {
	const n = 400
	in, ck := scanCopies(t, n)
	heat := filepath.Join(t.TempDir(), "heat")
	cmd := exec.Command(madclipBin, "predict", "--checkpoint", ck, "--device", "cpu", "--batch", "1", "--heatmap", heat+"/", in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m, _ := filepath.Glob(filepath.Join(heat, "*.png")); len(m) >= 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 128+15 {
		t.Fatalf("SIGTERM: %v, want exit status 143: %s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "predict: stopped by SIGTERM after") || !strings.Contains(stderr.String(), "madclip: SIGTERM: stopping after the work in hand") {
		t.Errorf("stderr: %s", stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	pics, _ := filepath.Glob(filepath.Join(heat, "*.png"))
	if len(lines) == 0 || len(lines) >= n || len(pics) != len(lines) {
		t.Errorf("%d results printed, %d heatmaps written, of %d", len(lines), len(pics), n)
	}
	for _, p := range pics {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := png.Decode(f); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		f.Close()
	}
	if left, _ := filepath.Glob(filepath.Join(heat, ".*")); len(left) > 0 {
		t.Errorf("temporaries left: %v", left)
	}
}

// scanCopies is a folder of n copies of one synthetic test scan, and the
// checkpoint trained on their dataset.
func scanCopies(t *testing.T, n int) (folder, ck string) {
	t.Helper()
	root, ck := trained(t)
	raw, err := os.ReadFile(filepath.Join(root, "Brain_AD", "test", "good", "img", "000.png"))
	if err != nil {
		t.Fatal(err)
	}
	folder = t.TempDir()
	for i := range n {
		if err := os.WriteFile(filepath.Join(folder, fmt.Sprintf("s%03d.png", i)), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return folder, ck
}

// A reader that stops reading (predict … | head -2) ends the run as a
// shell reports SIGPIPE, without a message, after the pictures being
// written are in place: no temporary is left.
func TestPredictBrokenPipe(t *testing.T) {
	const n = 200
	in, ck := scanCopies(t, n)
	out := t.TempDir()
	cmd := exec.Command(madclipBin, "predict", "--checkpoint", ck, "--device", "cpu", "--json", "--quiet",
		"--heatmap", filepath.Join(out, "h")+"/", "--panel", filepath.Join(out, "p")+"/", in)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	r, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(r)
	for range 2 {
		if !lines.Scan() {
			t.Fatalf("fewer than 2 rows: %v %s", lines.Err(), stderr.String())
		}
	}
	r.Close()
	err = cmd.Wait()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 128+13 || stderr.Len() != 0 {
		t.Fatalf("stdout closed after 2 rows: %v, stderr %q; want exit status 141 and no message", err, stderr.String())
	}
	for _, d := range []string{"h", "p"} {
		all, _ := os.ReadDir(filepath.Join(out, d))
		if len(all) < 2 || len(all) == n {
			t.Errorf("%s: %d files, want the 2 printed and those in flight", d, len(all))
		}
		for _, e := range all {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("%s: temporary %s left", d, e.Name())
			}
		}
	}
}

// TestDatasetGuardAfterCdThroughLink: run from a folder entered through a
// link into a dataset (so $PWD names the link), `..` is where the kernel
// takes it, inside the dataset, and outputs there are refused.
func TestDatasetGuardAfterCdThroughLink(t *testing.T) {
	root, ck := trained(t)
	lnk := filepath.Join(t.TempDir(), "lnk")
	if err := os.Symlink(filepath.Join(root, "Brain_AD", "test"), lnk); err != nil {
		t.Fatal(err)
	}
	scan := filepath.Join(root, "Brain_AD", "test", "Ungood", "img", "001.png")
	before, _ := os.ReadFile(scan)
	for _, args := range [][]string{
		{"predict", "--checkpoint", ck, "Ungood/img/000.png", "--heatmap", "../test/Ungood/img/001.png"},
		{"predict", "--checkpoint", ck, "Ungood/img/000.png", "--heatmap", "../x.png"},
		{"export", "authors", ck, "../x.pth"},
		{"train", "--data", "../..", "--dataset", "Brain", "--preset", "tiny", "--shots", "2", "--epochs", "1", "--image-size", "56", "--out", "../t.safetensors"},
	} {
		cmd := exec.Command(madclipBin, args...)
		cmd.Dir = lnk // os/exec sets PWD to it, as a shell's cd does
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "madclip writes nothing into a dataset") {
			t.Errorf("%v from %s: %v %s", args, lnk, err, out)
		}
	}
	if after, _ := os.ReadFile(scan); !bytes.Equal(before, after) {
		t.Error("a scan was replaced")
	}
	for _, name := range []string{"x.png", "x.pth", "t.safetensors"} {
		if _, err := os.Stat(filepath.Join(root, "Brain_AD", name)); err == nil {
			t.Errorf("%s written into the dataset", name)
		}
	}
}

// An output that is the command's own standard output or error, redirected
// to a file (/dev/stdout, or the file's own name), is refused: the file
// would be replaced and the command's lines lost.
func TestOutputIsStandardStream(t *testing.T) {
	root, ck := trained(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log.txt")
	scan := filepath.Join(root, "Brain_AD", "test", "good", "img", "000.png")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--out", "/dev/stdout"}, "--out /dev/stdout is this command's standard output"},
		{[]string{"predict", scan, "--checkpoint", ck, "--heatmap", log}, "--heatmap " + log + " is this command's standard output"},
	} {
		f, err := os.Create(log)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(madclipBin, c.args...)
		var e bytes.Buffer
		cmd.Stdout, cmd.Stderr = f, &e
		err = cmd.Run()
		f.Close()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		wantFailure(t, c.want, e.String(), code)
		if st, err := os.Stat(log); err != nil || st.Size() != 0 {
			t.Errorf("%s: the redirected file was written: %v %v", c.args[0], st, err)
		}
	}
}

// TestOutputsAsAnotherUser: as a user who may not write there, a file
// output's folder is refused before any scoring, and a read-only file of
// madclip's is not replaced. (Run as root, acting as nobody.)
func TestOutputsAsAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("acts as nobody, which only root can")
	}
	root, ck := trained(t)
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		os.Chmod(d, 0o755)
	}
	copyFile := func(src, dst string, mode os.FileMode) {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, mode); err != nil {
			t.Fatal(err)
		}
	}
	bin, myCk, scan := filepath.Join(dir, "madclip"), filepath.Join(dir, "ck.safetensors"), filepath.Join(dir, "scan.png")
	copyFile(madclipBin, bin, 0o755)
	copyFile(ck, myCk, 0o644)
	copyFile(filepath.Join(root, "Brain_AD", "test", "good", "img", "000.png"), scan, 0o644)
	asNobody := func(args ...string) (string, int) {
		cmd := exec.Command(bin, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CACHE_HOME="+filepath.Join(dir, "cache"))
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Skip("cannot run as nobody:", err)
		}
		return stderr.String(), code
	}
	if e, code := asNobody("--version"); code != 0 {
		t.Skip("madclip does not run as nobody here (its library out of reach?):", e)
	}
	ro := filepath.Join(dir, "ro")
	os.Mkdir(ro, 0o555)
	e, code := asNobody("predict", scan, "-c", myCk, "--heatmap", filepath.Join(ro, "h.png"), "--device", "cpu")
	wantFailure(t, "--heatmap "+filepath.Join(ro, "h.png")+": cannot create files in "+ro+": permission denied", e, code)
	if strings.Contains(e, "anomalous") || strings.Contains(e, "normal ") {
		t.Errorf("scored before refusing: %s", e)
	}
	open := filepath.Join(dir, "open")
	os.Mkdir(open, 0o777)
	heat := filepath.Join(open, "h.png")
	if _, e, code := madclip(t, nil, "predict", scan, "-c", myCk, "--heatmap", heat, "--device", "cpu"); code != 0 {
		t.Fatal(e)
	}
	os.Chmod(heat, 0o444)
	before, _ := os.ReadFile(heat)
	e, code = asNobody("predict", scan, "-c", myCk, "--heatmap", heat, "--device", "cpu")
	wantFailure(t, heat+": it is write-protected", e, code)
	if after, _ := os.ReadFile(heat); !bytes.Equal(before, after) {
		t.Error("a read-only heatmap was replaced")
	}
}
