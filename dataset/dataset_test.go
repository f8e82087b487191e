package dataset

import (
	"bytes"
	"image"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"madclip/imaging"
	"madclip/torch"
)

func synthRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if err := Synth(root, SynthOptions{Seed: 3, Valid: 6, Test: 4}); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestSynthLayoutAndDeterminism(t *testing.T) {
	root := synthRoot(t)
	brain, err := ReadSplit(root, "Brain", "valid")
	if err != nil {
		t.Fatal(err)
	}
	// At least the 23 normal and 22 abnormal names of the authors' lists.
	if n, a := Counts(brain.Samples); n != 23 || a != 22 || !brain.HasMasks {
		t.Errorf("Brain valid: %d normal %d abnormal, masks %v", n, a, brain.HasMasks)
	}
	chest, err := ReadSplit(root, "Chest", "test")
	if err != nil {
		t.Fatal(err)
	}
	if chest.HasMasks || len(chest.Samples) != 8 {
		t.Errorf("Chest test: %d samples, masks %v", len(chest.Samples), chest.HasMasks)
	}
	// Every abnormal Brain image has a non-empty mask inside the image.
	for _, s := range brain.Samples {
		im, err := Load(s, 32, true)
		if err != nil {
			t.Fatal(err)
		}
		sum := float32(0)
		for _, v := range im.Mask {
			sum += v
		}
		if s.Abnormal != (sum > 0) {
			t.Errorf("%s: abnormal %v, mask sum %v", s.Path, s.Abnormal, sum)
		}
		if len(im.Pixels) != 3*32*32 {
			t.Errorf("pixels %d", len(im.Pixels))
		}
	}
	// The same seed writes the same bytes.
	again := t.TempDir()
	Synth(again, SynthOptions{Seed: 3, Valid: 6, Test: 4})
	a, _ := os.ReadFile(filepath.Join(root, "Brain_AD", "test", "Ungood", "img", "002.png"))
	b, _ := os.ReadFile(filepath.Join(again, "Brain_AD", "test", "Ungood", "img", "002.png"))
	if len(a) == 0 || string(a) != string(b) {
		t.Error("synth is not deterministic")
	}
	// A dataset's files do not depend on the others written with it, nor
	// on their order.
	alone := t.TempDir()
	if err := Synth(alone, SynthOptions{Seed: 3, Valid: 6, Test: 4, Datasets: []string{"Chest", "Liver", "Brain"}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Brain_AD/test/Ungood/img/002.png", "Brain_AD/valid/Ungood/anomaly_mask/00124_70.png", "Chest_AD/test/good/img/003.png"} {
		a, _ := os.ReadFile(filepath.Join(root, f))
		b, _ := os.ReadFile(filepath.Join(alone, f))
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s differs with other datasets beside it", f)
		}
	}
	// Different seeds write different images.
	other := t.TempDir()
	Synth(other, SynthOptions{Seed: 4, Valid: 6, Test: 4})
	if a, _ := os.ReadFile(filepath.Join(other, "Brain_AD/test/Ungood/img/002.png")); string(a) == string(b) {
		t.Error("seeds 3 and 4 wrote the same image")
	}
}

func TestSynthAllDatasets(t *testing.T) {
	root := t.TempDir()
	var names []string
	for _, b := range benchmarks {
		names = append(names, b.Name)
	}
	if err := Synth(root, SynthOptions{Seed: 1, Valid: 2, Test: 2, Size: 32, Datasets: names}); err != nil {
		t.Fatal(err)
	}
	for _, b := range benchmarks {
		s, err := ReadSplit(root, b.Name, "test")
		if err != nil {
			t.Fatal(err)
		}
		if s.HasMasks != b.Masks || len(s.Samples) != 4 {
			t.Errorf("%s: masks %v, %d samples", b.Name, s.HasMasks, len(s.Samples))
		}
	}
}

func TestReadSplitErrors(t *testing.T) {
	root := synthRoot(t)
	if _, err := ReadSplit(root, "Liver", "valid"); err == nil || !strings.Contains(err.Error(), "Liver_AD") {
		t.Errorf("missing dataset: %v", err)
	}
	// A missing mask names the image.
	mask := filepath.Join(root, "Brain_AD", "test", "Ungood", "anomaly_mask", "001.png")
	os.Remove(mask)
	if _, err := ReadSplit(root, "Brain", "test"); err == nil || !strings.Contains(err.Error(), "001.png") {
		t.Errorf("missing mask: %v", err)
	}
	// A mask that is a link loop is not called missing.
	os.Symlink("001.png", mask)
	if _, err := ReadSplit(root, "Brain", "test"); err == nil || !strings.Contains(err.Error(), "its mask "+mask+": too many levels of symbolic links") {
		t.Errorf("mask in a link loop: %v", err)
	}
	os.Remove(mask)
	// A folder with an image's name among the images is not left out
	// unseen.
	odd := filepath.Join(root, "Brain_AD", "test", "good", "img", "x.png")
	os.Mkdir(odd, 0o755)
	if _, err := ReadSplit(root, "Brain", "test"); err == nil || !strings.Contains(err.Error(), odd+" is a folder with an image's name, not an image") {
		t.Errorf("a folder named x.png: %v", err)
	}
	os.Remove(odd)
	// An empty class folder.
	good := filepath.Join(root, "Chest_AD", "valid", "good", "img")
	os.RemoveAll(good)
	os.MkdirAll(good, 0o755)
	if _, err := ReadSplit(root, "Chest", "valid"); err == nil || !strings.Contains(err.Error(), good) {
		t.Errorf("empty folder: %v", err)
	}
	// A split without abnormal images says so, not that their masks are
	// missing.
	ungood := filepath.Join(root, "Brain_AD", "valid", "Ungood")
	os.RemoveAll(ungood)
	if _, err := ReadSplit(root, "Brain", "valid"); err == nil || !strings.Contains(err.Error(), "no folder "+ungood) {
		t.Errorf("no Ungood folder: %v", err)
	}
}

func TestLoadErrors(t *testing.T) {
	root := synthRoot(t)
	split, _ := ReadSplit(root, "Brain", "valid")
	// A mask of another size.
	ab := shrinkFirstMask(t, split)
	if _, err := Load(ab, 32, true); err == nil || !strings.Contains(err.Error(), ab.MaskPath) {
		t.Errorf("mask size: %v", err)
	}
	// A corrupt image.
	os.WriteFile(ab.Path, []byte("not a png"), 0o644)
	if _, err := Load(ab, 32, true); err == nil || !strings.Contains(err.Error(), ab.Path) {
		t.Errorf("corrupt image: %v", err)
	}
}

// CheckHeaders finds, from headers alone, an empty image, one over the
// pixel limit, a strip too elongated to resize and a mask of another size,
// each named; a sound split passes.
func TestCheckHeaders(t *testing.T) {
	root := synthRoot(t)
	split, _ := ReadSplit(root, "Brain", "test")
	if err := split.CheckHeaders(imaging.Limits{}, 240); err != nil {
		t.Fatalf("a sound split: %v", err)
	}
	if err := split.CheckHeaders(imaging.Limits{MaxPixels: 100}, 240); err == nil || !strings.Contains(err.Error(), "over the limit of 100") {
		t.Errorf("pixel limit: %v", err)
	}
	ab := shrinkFirstMask(t, split)
	if err := split.CheckHeaders(imaging.Limits{}, 240); err == nil || !strings.Contains(err.Error(), ab.MaskPath+": mask is 10x10") {
		t.Errorf("mask size: %v", err)
	}
	writePNG(ab.Path, image.NewGray(image.Rect(0, 0, 1, 3_000_000)))
	if err := split.CheckHeaders(imaging.Limits{}, 240); err == nil || !strings.Contains(err.Error(), ab.Path+": a 1×3000000 image is too elongated") {
		t.Errorf("strip: %v", err)
	}
	first := split.Samples[0].Path
	os.WriteFile(first, nil, 0o644)
	if err := split.CheckHeaders(imaging.Limits{}, 240); err == nil || err.Error() != first+": empty file, not an image" {
		t.Errorf("empty image: %v", err)
	}
}

// shrinkFirstMask rewrites the mask of the split's first abnormal sample
// at 10×10, another size than its scan's, and returns that sample.
func shrinkFirstMask(t *testing.T, split *Split) Sample {
	t.Helper()
	for _, s := range split.Samples {
		if s.Abnormal {
			m, err := imaging.Load(s.MaskPath)
			if err != nil {
				t.Fatal(err)
			}
			writePNG(s.MaskPath, m.Luma().ResizeNearest(10, 10).Image())
			return s
		}
	}
	t.Fatal("no abnormal sample")
	return Sample{}
}

func TestShots(t *testing.T) {
	root := synthRoot(t)
	split, _ := ReadSplit(root, "Brain", "valid")
	s1, err := DrawShots(split.Samples, 4, 7)
	if err != nil {
		t.Fatal(err)
	}
	s2, _ := DrawShots(split.Samples, 4, 7)
	s3, _ := DrawShots(split.Samples, 4, 8)
	if !slices.Equal(s1.Normal, s2.Normal) || !slices.Equal(s1.Abnormal, s2.Abnormal) {
		t.Error("same seed, different shots")
	}
	if slices.Equal(s1.Normal, s3.Normal) && slices.Equal(s1.Abnormal, s3.Abnormal) {
		t.Error("different seeds, same shots")
	}
	shots, rest, err := s1.Select(split.Samples)
	if err != nil || len(shots) != 8 || len(rest) != len(split.Samples)-8 {
		t.Fatalf("select: %d shots %d rest %v", len(shots), len(rest), err)
	}
	if shots[0].Abnormal || !shots[7].Abnormal {
		t.Error("shots not normal first")
	}
	if _, err := DrawShots(split.Samples, 100, 1); err == nil {
		t.Error("more shots than images accepted")
	}
	// The authors' lists.
	path := filepath.Join(t.TempDir(), "my2-shot.txt")
	os.WriteFile(path, []byte("a-0: 001.png 003.png\nn-0: 000.png 002.png \n\n"), 0o644)
	s, err := ReadShotsFile(path, 0)
	if err != nil || !slices.Equal(s.Normal, []string{"000.png", "002.png"}) || !slices.Equal(s.Abnormal, []string{"001.png", "003.png"}) {
		t.Errorf("shots file: %+v %v", s, err)
	}
	// Saved with a byte-order mark, as some Windows editors do.
	os.WriteFile(path, []byte("\ufeffa-0: 001.png 003.png\r\nn-0: 000.png 002.png\r\n"), 0o644)
	if s, err := ReadShotsFile(path, 0); err != nil || !slices.Equal(s.Normal, []string{"000.png", "002.png"}) || !slices.Equal(s.Abnormal, []string{"001.png", "003.png"}) {
		t.Errorf("shots file with a byte-order mark: %+v %v", s, err)
	}
	os.WriteFile(path, []byte("a-0: 001.png\nn-0: 000.png 002.png\n"), 0o644)
	if _, err := ReadShotsFile(path, 0); err == nil || !strings.Contains(err.Error(), "balanced") {
		t.Errorf("unbalanced: %v", err)
	}
	os.WriteFile(path, []byte("a-0: 001.png 003.png\nn-0: 000.png\nn-1: 000.png\nn-0: 000.png\n"), 0o644)
	if _, err := ReadShotsFile(path, 0); err == nil || !strings.Contains(err.Error(), path+":4: shot 000.png is listed twice among the normal shots (first on line 2)") {
		t.Errorf("a shot twice in the file: %v", err)
	}
	for _, key := range []string{"x-0", "n-0x", "n-", "n--1", "nn-0", "n0"} {
		os.WriteFile(path, []byte("a-0: 001.png\n"+key+": 000.png\n"), 0o644)
		if _, err := ReadShotsFile(path, 0); err == nil || !strings.Contains(err.Error(), path+":2: unknown key") {
			t.Errorf("bad key %q: %v", key, err)
		}
	}
	os.WriteFile(path, []byte("a-0: 001.png\nn-0: "+strings.Repeat("x", maxShotsLine+1)+"\n"), 0o644)
	if _, err := ReadShotsFile(path, 0); err == nil || !strings.Contains(err.Error(), path+":2: a line longer than") {
		t.Errorf("a line of 4 MiB: %v", err)
	}
	bad := Shots{Normal: []string{"nope.png"}, Abnormal: []string{"001.png"}}
	if _, _, err := bad.Select(split.Samples); err == nil || !strings.Contains(err.Error(), "nope.png") {
		t.Errorf("unknown shot: %v", err)
	}
	twice := Shots{Normal: []string{s1.Normal[0], s1.Normal[0]}, Abnormal: s1.Abnormal[:2]}
	if _, _, err := twice.Select(split.Samples); err == nil || !strings.Contains(err.Error(), s1.Normal[0]+" is listed twice") {
		t.Errorf("a shot listed twice: %v", err)
	}
}

// The authors' lists for all six datasets are built in and parse, with k
// of each class; the name recorded in checkpoints reads them back.
func TestAuthorsShotLists(t *testing.T) {
	for _, b := range benchmarks {
		for _, k := range AuthorsShotCounts() {
			s, err := AuthorsShots(b.Name, k)
			if err != nil {
				t.Fatal(err)
			}
			if len(s.Normal) != k || len(s.Abnormal) != k {
				t.Errorf("%s %d-shot: %d normal, %d abnormal", b.Name, k, len(s.Normal), len(s.Abnormal))
			}
			again, err := OpenShots(AuthorsShotsName(b.Name, k), 0)
			if err != nil || !slices.Equal(again.Normal, s.Normal) || !slices.Equal(again.Abnormal, s.Abnormal) {
				t.Errorf("%s: %v %v", AuthorsShotsName(b.Name, k), again, err)
			}
		}
	}
	// Spot checks against the files' text.
	s, _ := AuthorsShots("Brain", 2)
	if !slices.Equal(s.Normal, []string{"00563_99.png", "00405_99.png"}) || !slices.Equal(s.Abnormal, []string{"00134_90.png", "01597_70.png"}) {
		t.Errorf("Brain 2-shot %v", s)
	}
	s, _ = AuthorsShots("Retina_OCT2017", 4)
	if s.Normal[0] != "NORMAL-5171640-1.jpeg" || s.Abnormal[3] != "CNV-6294785-2.jpeg" {
		t.Errorf("OCT2017 4-shot %v", s)
	}
	if _, err := AuthorsShots("Knee", 4); err == nil || !strings.Contains(err.Error(), "Knee") {
		t.Errorf("unknown dataset: %v", err)
	}
	if _, err := AuthorsShots("Brain", 3); err == nil || !strings.Contains(err.Error(), "3-shot") {
		t.Errorf("unknown k: %v", err)
	}
	if HasAuthorsShots("Brain", 3) || !HasAuthorsShots("Chest", 16) {
		t.Error("HasAuthorsShots")
	}
}

// A synthetic benchmark dataset carries the authors' shot names in valid/,
// so their lists select from it; JPEG names are JPEG files.
func TestSynthAuthorsNames(t *testing.T) {
	root := t.TempDir()
	if err := Synth(root, SynthOptions{Seed: 1, Size: 32, Valid: 2, Test: 2, Datasets: []string{"Retina_OCT2017", "Brain"}}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Retina_OCT2017", "Brain"} {
		valid, err := ReadSplit(root, name, "valid")
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range AuthorsShotCounts() {
			s, _ := AuthorsShots(name, k)
			if _, _, err := s.Select(valid.Samples); err != nil {
				t.Errorf("%s %d-shot: %v", name, k, err)
			}
		}
		test, _ := ReadSplit(root, name, "test")
		if len(test.Samples) != 4 {
			t.Errorf("%s test: %d images", name, len(test.Samples))
		}
	}
	raw, _ := os.ReadFile(filepath.Join(Dir(root, "Retina_OCT2017"), "valid", "good", "img", "NORMAL-5171640-1.jpeg"))
	if len(raw) < 3 || raw[0] != 0xff || raw[1] != 0xd8 {
		t.Error("a .jpeg name does not hold a JPEG")
	}
}

func TestAugment(t *testing.T) {
	err := torch.Do(func() error {
		return torch.Scoped(func(s *torch.Scope) error {
			g, _ := torch.NewGenerator(1)
			defer g.Free()
			n, size := int64(2), int64(24)
			img := torch.Rand(g, torch.Float32, torch.CPU, n, 3, size, size)
			// A square in the top-left quadrant.
			sq := torch.Ones(torch.Float32, torch.CPU, n, 1, 6, 6)
			mask := torch.Cat(3, torch.Cat(2, sq, torch.Zeros(torch.Float32, torch.CPU, n, 1, 18, 6)), torch.Zeros(torch.Float32, torch.CPU, n, 1, 24, 18))
			ai, am := Augment(img, mask, g)
			if sh := ai.Shape(); !slices.Equal(sh, []int64{Variants * n, 3, size, size}) {
				t.Fatalf("images %v", sh)
			}
			if sh := am.Shape(); !slices.Equal(sh, []int64{Variants * n, 1, size, size}) {
				t.Fatalf("masks %v", sh)
			}
			mv, _ := am.Float32s()
			iv, _ := ai.Float32s()
			for _, v := range mv {
				if v != 0 && v != 1 {
					t.Fatal("mask not binary")
				}
			}
			for _, v := range iv {
				if v < 0 || v > 1 {
					t.Fatal("image values outside [0, 1]")
				}
			}
			plane := int(size * size)
			at := func(variant, y, x int) float32 { return mv[variant*int(n)*plane+y*int(size)+x] }
			// Original: the square at the top left; horizontal flip (14):
			// top right; vertical flip (15): bottom left.
			if at(0, 2, 2) != 1 || at(14, 2, 21) != 1 || at(14, 2, 2) != 0 || at(15, 21, 2) != 1 {
				t.Error("flips do not move the mask")
			}
			// The jitter (13) keeps the mask and changes the image.
			if at(13, 2, 2) != 1 {
				t.Error("jitter moved the mask")
			}
			// Original images come first, unchanged.
			orig, _ := img.Float32s()
			if !slices.Equal(iv[:len(orig)], orig) {
				t.Error("first variant is not the original")
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSynthLeavesRealDataAlone: synth writes over its own earlier output
// (a smaller set leaves no extra images behind, a file it did not write
// stays) but refuses a dataset folder it did not write.
func TestSynthLeavesRealDataAlone(t *testing.T) {
	root := t.TempDir()
	if err := Synth(root, SynthOptions{Seed: 1, Valid: 2, Test: 6, Datasets: []string{"Mine"}}); err != nil {
		t.Fatal(err)
	}
	// A file someone else put among the synthetic ones is not synth's to
	// remove.
	theirs := filepath.Join(Dir(root, "Mine"), "test", "good", "img", "zz-theirs.png")
	os.WriteFile(theirs, []byte("their scan"), 0o644)
	if err := Synth(root, SynthOptions{Seed: 1, Valid: 2, Test: 3, Datasets: []string{"Mine"}}); err != nil {
		t.Fatalf("synth over its own output: %v", err)
	}
	if b, err := os.ReadFile(theirs); err != nil || string(b) != "their scan" {
		t.Errorf("synth removed a file it did not write: %v", err)
	}
	os.Remove(theirs)
	// A folder swapped for a link to elsewhere, and a marker edited to
	// list paths outside: nothing outside the dataset's folder goes.
	outside := t.TempDir()
	victim := filepath.Join(outside, "000.png")
	os.WriteFile(victim, []byte("elsewhere"), 0o644)
	good := filepath.Join(Dir(root, "Mine"), "valid", "good", "img")
	os.RemoveAll(good)
	os.Symlink(outside, good)
	marker := filepath.Join(Dir(root, "Mine"), synthMarker)
	m, _ := os.ReadFile(marker)
	os.WriteFile(marker, append(m, []byte("../../x.png\n"+victim+"\nvalid/good/img/000.png\n")...), 0o644)
	os.WriteFile(filepath.Join(root, "x.png"), []byte("beside"), 0o644)
	err := Synth(root, SynthOptions{Seed: 1, Valid: 2, Test: 3, Datasets: []string{"Mine"}})
	if err == nil || !strings.Contains(err.Error(), "leads out of") {
		t.Errorf("synth through a folder linked elsewhere: %v", err)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "elsewhere" {
		t.Errorf("synth removed a file outside the dataset through a link: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "x.png")); err != nil {
		t.Errorf("synth removed a file the marker named outside the dataset: %v", err)
	}
	os.Remove(good)
	if err := Synth(root, SynthOptions{Seed: 1, Valid: 2, Test: 3, Datasets: []string{"Mine"}}); err != nil {
		t.Fatalf("synth once the link is gone: %v", err)
	}
	// An image replaced by a link to a file elsewhere is not written
	// through.
	img := filepath.Join(Dir(root, "Mine"), "test", "good", "img", "000.png")
	os.Remove(img)
	os.Symlink(victim, img)
	if err := Synth(root, SynthOptions{Seed: 1, Valid: 2, Test: 3, Datasets: []string{"Mine"}}); err == nil || !strings.Contains(err.Error(), "a symbolic link") {
		t.Errorf("synth over an image linked elsewhere: %v", err)
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "elsewhere" {
		t.Errorf("synth wrote through a link to a file outside the dataset: %v", err)
	}
	os.Remove(img)
	if err := Synth(root, SynthOptions{Seed: 1, Valid: 2, Test: 3, Datasets: []string{"Mine"}}); err != nil {
		t.Fatalf("synth once the link is gone: %v", err)
	}
	s, err := ReadSplit(root, "Mine", "test")
	if err != nil {
		t.Fatal(err)
	}
	if n, a := Counts(s.Samples); n != 3 || a != 3 {
		t.Errorf("after a smaller synth: %d normal, %d abnormal test images, want 3 and 3", n, a)
	}
	real := filepath.Join(root, "Real_AD", "test", "good", "img")
	os.MkdirAll(real, 0o755)
	scan := filepath.Join(real, "000.png")
	os.WriteFile(scan, []byte("a real scan"), 0o644)
	err = Synth(root, SynthOptions{Seed: 1, Valid: 2, Test: 3, Datasets: []string{"Real"}})
	if err == nil || !strings.Contains(err.Error(), "Real_AD already holds files") {
		t.Errorf("synth over real data: %v", err)
	}
	if b, _ := os.ReadFile(scan); string(b) != "a real scan" {
		t.Error("synth changed a real scan")
	}
	if err := Synth(root, SynthOptions{Datasets: []string{"../x"}}); err == nil {
		t.Error("a dataset name with a path accepted")
	}
	// A file as the root, and a dataset folder that is a link to an empty
	// folder elsewhere: refused, nothing written there.
	file := filepath.Join(root, "notes.txt")
	os.WriteFile(file, []byte("notes"), 0o644)
	if err := Synth(file, SynthOptions{Datasets: []string{"Mine"}}); err == nil || !strings.Contains(err.Error(), file+" is a file, not a folder") {
		t.Errorf("synth under a file: %v", err)
	}
	empty := t.TempDir()
	os.Symlink(empty, Dir(root, "Linked"))
	if err := Synth(root, SynthOptions{Valid: 2, Test: 2, Datasets: []string{"Linked"}}); err == nil || !strings.Contains(err.Error(), "Linked_AD is not a folder") {
		t.Errorf("synth through a linked dataset folder: %v", err)
	}
	if e, _ := os.ReadDir(empty); len(e) != 0 {
		t.Errorf("synth wrote %d entries through a linked dataset folder", len(e))
	}
}

// A mask is binarised at 0.5 of its grey level: 127 is normal, 128 an
// anomaly (the authors' mask > 0.5 after ToTensor's /255).
func TestMaskBinarisedAtHalf(t *testing.T) {
	dir := t.TempDir()
	scan, mask := filepath.Join(dir, "x.png"), filepath.Join(dir, "x_mask.png")
	img := image.NewGray(image.Rect(0, 0, 4, 1))
	if err := writePNG(scan, img); err != nil {
		t.Fatal(err)
	}
	m := image.NewGray(image.Rect(0, 0, 4, 1))
	m.Pix = []byte{0, 127, 128, 255}
	if err := writePNG(mask, m); err != nil {
		t.Fatal(err)
	}
	// Resized to 4×4 (rows repeat the single source row).
	got, err := Load(Sample{Path: scan, MaskPath: mask, Abnormal: true}, 4, true)
	if err != nil {
		t.Fatal(err)
	}
	for y := range 4 {
		if row := got.Mask[4*y : 4*y+4]; !slices.Equal(row, []float32{0, 0, 1, 1}) {
			t.Errorf("mask row %d: %v, want [0 0 1 1]", y, row)
		}
	}
}

// A dataset is named by its folder: no path, no control character.
func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"Brain": true, "Retina_OCT2017": true, "my knee MRI": true, "café": true,
		"": false, ".": false, "..": false, "../x": false, "a/b": false, "a\x00b": false, "a\nb": false, "tab\there": false,
		strings.Repeat("x", 201): false,
	} {
		if err := CheckName(name); (err == nil) != ok {
			t.Errorf("CheckName(%q): %v", name, err)
		}
	}
}

// TestSynthChecksBeforeClearing: a file of someone else's, or a link, where
// synth would write is refused before anything is removed, so the earlier
// dataset stays whole and the file stays as it was.
func TestSynthChecksBeforeClearing(t *testing.T) {
	root := t.TempDir()
	o := SynthOptions{Seed: 1, Valid: 2, Test: 4, Datasets: []string{"Mine"}}
	if err := Synth(root, o); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		filepath.WalkDir(Dir(root, "Mine"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
		return n
	}
	before := count()
	var plain bytes.Buffer // a PNG another program wrote
	png.Encode(&plain, image.NewGray(image.Rect(0, 0, 8, 8)))
	theirs := filepath.Join(Dir(root, "Mine"), "test", "good", "img", "000.png")
	os.WriteFile(theirs, plain.Bytes(), 0o644)
	err := Synth(root, o)
	if err == nil || !strings.Contains(err.Error(), theirs+": it exists and madclip did not write it") {
		t.Errorf("synth over someone else's picture: %v", err)
	}
	if b, _ := os.ReadFile(theirs); !bytes.Equal(b, plain.Bytes()) {
		t.Error("someone else's picture was replaced")
	}
	if n := count(); n != before {
		t.Errorf("%d files after the refusal, %d before", n, before)
	}
	os.Remove(theirs)
	link := filepath.Join(Dir(root, "Mine"), "test", "Ungood", "img", "003.png")
	os.Remove(link)
	os.Symlink(filepath.Join(t.TempDir(), "x.png"), link)
	kept := filepath.Join(Dir(root, "Mine"), "valid", "good", "img", "001.png")
	first, _ := os.ReadFile(kept)
	if err := Synth(root, SynthOptions{Seed: 2, Valid: 2, Test: 4, Datasets: []string{"Mine"}}); err == nil || !strings.Contains(err.Error(), "not a file synth wrote") {
		t.Errorf("synth over a link: %v", err)
	}
	// 000.png went with the user's picture; 003.png is the link.
	if n, now := count(), func() []byte { b, _ := os.ReadFile(kept); return b }(); n != before-1 || !bytes.Equal(now, first) {
		t.Errorf("after the refusal: %d files (%d before), %s rewritten: %v", n, before-1, kept, !bytes.Equal(now, first))
	}
	os.Remove(link)
	if err := Synth(root, o); err != nil || count() != before {
		t.Errorf("synth once the link is gone: %v, %d files, want %d", err, count(), before)
	}
}

// Each shot's fingerprint changes with any byte of its image or mask; the
// list follows the samples' order; the same files give the same list.
func TestDigest(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b, m := write("a.png", "aaa"), write("b.png", "bbb"), write("m.png", "mmm")
	samples := []Sample{{Path: a}, {Path: b, MaskPath: m, Abnormal: true}}
	digest := func(s []Sample) string {
		d, err := Digests(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(d) != len(s) {
			t.Fatalf("%d digests of %d samples", len(d), len(s))
		}
		return strings.Join(d, " ")
	}
	d0 := digest(samples)
	if len(d0) != 2*64+1 || digest(samples) != d0 {
		t.Fatalf("digest %q not stable", d0)
	}
	if digest([]Sample{samples[1], samples[0]}) == d0 {
		t.Error("the order does not count")
	}
	// Moving a byte from an image to its mask changes it too: each file's
	// length is hashed before it.
	write("b.png", "bb")
	write("m.png", "bmmm")
	if digest(samples) == d0 {
		t.Error("a byte moved from an image to its mask is not seen")
	}
	write("b.png", "bbb")
	write("m.png", "mmn")
	if digest(samples) == d0 {
		t.Error("a changed mask is not seen")
	}
	if _, err := Digests([]Sample{{Path: filepath.Join(dir, "none.png")}}); err == nil || !strings.Contains(err.Error(), "none.png") {
		t.Errorf("missing file: %v", err)
	}
}

// The extensions read in folders are those PIL takes for PNG and JPEG.
func TestIsImage(t *testing.T) {
	for name, want := range map[string]bool{
		"a.png": true, "a.PNG": true, "b.jpg": true, "b.JPEG": true, "c.jpe": true,
		"d.tif": false, "e.npy": false, "png": false, "f.png.txt": false,
	} {
		if IsImage(name) != want {
			t.Errorf("IsImage(%q) = %v", name, !want)
		}
	}
}

// A dataset that is not there is explained by what the user most likely
// meant.
func TestMissingHint(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"Brain_AD/valid", "Chest_AD/test", "notes"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ root, name, want string }{
		{filepath.Join(root, "Brain_AD"), "Brain", "is a dataset's own folder: --data takes the folder that holds it, " + root + ")"},
		{root, "brain", "(did you mean Brain? names are case-sensitive)"},
		{root, "Chest_AD", "(a dataset is named without its folder's _AD: --dataset Chest)"},
		{root, "Knee", "(datasets under " + root + ": Brain, Chest)"},
		{filepath.Join(root, "notes"), "Brain", "holds no dataset: no {name}_AD folder)"},
		{filepath.Join(root, "none"), "Brain", "(--data " + filepath.Join(root, "none") + ": no such folder)"},
		{"~/none", "Brain", "the shell expands ~ only at the start of a word"},
		{filepath.Join(root, "file.txt"), "Brain", "(--data " + filepath.Join(root, "file.txt") + ": a file, not the folder that holds the datasets)"},
	} {
		os.WriteFile(filepath.Join(root, "file.txt"), []byte("x"), 0o644)
		err := Missing(c.root, c.name)
		if !strings.HasPrefix(err.Error(), "dataset "+c.name+": no folder "+Dir(c.root, c.name)+" (") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("--data %s --dataset %s: %v, want %q", c.root, c.name, err, c.want)
		}
	}
	if _, err := ReadSplit(root, "brain", "valid"); err == nil || !strings.Contains(err.Error(), "did you mean Brain?") {
		t.Errorf("ReadSplit of brain: %v", err)
	}
}

// synth refuses a benchmark's name in another case and a name with the
// folder's _AD, writing nothing; a name of one's own is written.
func TestSynthNameSlips(t *testing.T) {
	root := t.TempDir()
	for name, want := range map[string]string{
		"brain":    "dataset brain: the benchmark's is called Brain (names are case-sensitive)",
		"Brain_AD": "dataset Brain_AD: a dataset is named without its folder's _AD: give Brain",
	} {
		if err := Synth(root, SynthOptions{Size: 32, Valid: 2, Test: 1, Datasets: []string{name}}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("synth %s: %v, want %q", name, err, want)
		}
	}
	if entries, _ := os.ReadDir(root); len(entries) != 0 {
		t.Errorf("refused names wrote %v", entries)
	}
	if err := Synth(root, SynthOptions{Size: 32, Valid: 2, Test: 1, Datasets: []string{"Knee"}}); err != nil || !isDir(Dir(root, "Knee")) {
		t.Errorf("synth Knee: %v", err)
	}
}

// A file in both classes (a good/img linked to Ungood/img) is refused,
// naming both paths; the same picture stored twice, as two files, is not
// this package's to judge.
func TestSameFileInBothClasses(t *testing.T) {
	root := t.TempDir()
	if err := Synth(root, SynthOptions{Size: 32, Valid: 2, Test: 2, Datasets: []string{"Chest"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSplit(root, "Chest", "test"); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(Dir(root, "Chest"), "test", "good", "img")
	if err := os.RemoveAll(good); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join("..", "Ungood", "img"), good); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadSplit(root, "Chest", "test"); err == nil || !strings.Contains(err.Error(), "are the same file, normal and abnormal at once") {
		t.Errorf("good/img linked to Ungood/img: %v", err)
	}
}

// What a split's image folders hold besides images is listed and said in
// one note (hidden entries left out); a split with none has no note.
func TestSplitSkipped(t *testing.T) {
	root := synthRoot(t)
	clean, err := ReadSplit(root, "Chest", "test")
	if err != nil {
		t.Fatal(err)
	}
	if len(clean.Skipped) != 0 || clean.SkipNote() != "" {
		t.Errorf("a split of images only: skipped %v, note %q", clean.Skipped, clean.SkipNote())
	}
	good := filepath.Join(root, "Chest_AD", "test", "good", "img")
	ungood := filepath.Join(root, "Chest_AD", "test", "Ungood", "img")
	os.WriteFile(filepath.Join(good, "readme.txt"), nil, 0o644)
	os.WriteFile(filepath.Join(good, ".DS_Store"), nil, 0o644)
	os.WriteFile(filepath.Join(ungood, "scan.tif"), nil, 0o644)
	os.Mkdir(filepath.Join(ungood, "more"), 0o755)
	s, err := ReadSplit(root, "Chest", "test")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{filepath.Join(good, "readme.txt"), filepath.Join(ungood, "more") + "/", filepath.Join(ungood, "scan.tif")}
	if !slices.Equal(s.Skipped, want) || len(s.Samples) != 8 {
		t.Errorf("skipped %v, want %v; %d samples", s.Skipped, want, len(s.Samples))
	}
	if note, want := s.SkipNote(), filepath.Join(root, "Chest_AD", "test")+": skipping 2 files that are not PNG or JPEG and 1 subfolder (not searched) in its image folders (e.g. "+want[0]+")"; note != want {
		t.Errorf("note %q\nwant %q", note, want)
	}
	os.Remove(filepath.Join(good, "readme.txt"))
	os.Remove(filepath.Join(ungood, "scan.tif"))
	s, _ = ReadSplit(root, "Chest", "test")
	if note := s.SkipNote(); !strings.Contains(note, "skipping 1 subfolder (not searched) in its image folders") {
		t.Errorf("one folder: %q", note)
	}
}
