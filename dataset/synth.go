package dataset

import (
	"bufio"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"image/jpeg"
	"io"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"madclip/atomicfile"
	"madclip/authorship"
	"madclip/internal/regularfile"
)

// SynthOptions size a synthetic dataset.
type SynthOptions struct {
	Seed uint64
	Size int // image side in pixels (64 by default)
	// Valid is the number of images per class in valid/ (20 by default);
	// a benchmark dataset's valid split holds at least every image its
	// authors' few-shot lists name.
	Valid int
	Test  int // images per class in test/ (24 by default)
	// Datasets names the datasets to write (default: SynthDatasets). Names
	// of the benchmark get masks when the benchmark has them; other names
	// get masks.
	Datasets []string
	// Started, when set, is called once the destination has been checked,
	// before the first file is written (to say that writing begins).
	Started func()
}

// SynthDatasets are the synthetic datasets Synth writes: Brain with masks
// (a single organ-like shape), Chest without (two lung-like shapes).
func SynthDatasets() []Benchmark { return []Benchmark{{"Brain", true}, {"Chest", false}} }

// Synth writes synthetic datasets in the benchmark layout under root:
// textured organ-like shapes, and in abnormal images one anomaly (a bright
// blob, a streak or a patch of foreign texture) with its exact mask. The
// same seed writes the same files.
func Synth(root string, o SynthOptions) error {
	if o.Size == 0 {
		o.Size = 64
	}
	if o.Valid == 0 {
		o.Valid = 20
	}
	if o.Test == 0 {
		o.Test = 24
	}
	if o.Size < 32 {
		return fmt.Errorf("synth: size %d is too small (at least 32)", o.Size)
	}
	if st, err := os.Stat(root); err == nil && !st.IsDir() {
		what := "a file"
		if !st.Mode().IsRegular() {
			what = regularfile.Kind(st.Mode())
		}
		return fmt.Errorf("synth: %s is %s, not a folder; give the folder to write the datasets under", root, what)
	}
	specs, err := synthSpecs(o.Datasets)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	seen := map[string]bool{}
	for _, d := range specs {
		if err := CheckName(d.Name); err != nil {
			return fmt.Errorf("synth: %w", err)
		}
		if seen[d.Name] {
			return fmt.Errorf("synth: dataset %s listed twice", d.Name)
		}
		seen[d.Name] = true
		if err := synthFolder(Dir(root, d.Name)); err != nil {
			return err
		}
	}
	// Every file to write is checked before anything is removed or
	// written, so that a refusal leaves the earlier dataset whole.
	for _, d := range specs {
		dir := Dir(root, d.Name)
		for _, rel := range synthFiles(d.Name, d.Masks, o) {
			if err := replaceable(filepath.Join(dir, rel), dir); err != nil {
				return err
			}
		}
	}
	for _, d := range specs {
		if err := clearSynthetic(Dir(root, d.Name)); err != nil {
			return err
		}
	}
	if o.Started != nil {
		o.Started()
	}
	for _, d := range specs {
		if err := synthDataset(root, d, o); err != nil {
			return err
		}
	}
	return nil
}

// synthSpec names one dataset to write and whether it has masks.
type synthSpec struct {
	Name  string
	Masks bool
}

// synthSpecs lists the datasets to write: the default set, or the named
// ones, with masks where the benchmark of that name has them. A name that
// is a benchmark's in another case, or that ends in the folder's _AD, is a
// slip, refused: it would write a dataset no command finds by the name
// meant.
func synthSpecs(names []string) ([]synthSpec, error) {
	var specs []synthSpec
	if len(names) == 0 {
		for _, d := range SynthDatasets() {
			specs = append(specs, synthSpec{d.Name, d.Masks})
		}
		return specs, nil
	}
	for _, n := range names {
		masks := true
		for _, b := range benchmarks {
			switch {
			case b.Name == n:
				masks = b.Masks
			case strings.EqualFold(b.Name, n):
				return nil, fmt.Errorf("dataset %s: the benchmark's is called %s (names are case-sensitive); give %s, or another name for a dataset of your own", n, b.Name, b.Name)
			}
		}
		if trimmed, ok := strings.CutSuffix(n, "_AD"); ok && trimmed != "" {
			return nil, fmt.Errorf("dataset %s: a dataset is named without its folder's _AD: give %s (this name would write %s_AD)", n, trimmed, n)
		}
		specs = append(specs, synthSpec{n, masks})
	}
	return specs, nil
}

// synthDataset writes one dataset's valid and test splits under root.
func synthDataset(root string, d synthSpec, o SynthOptions) error {
	// Each dataset's stream depends on its name only, so a dataset's
	// files are the same whichever others are written with it.
	r := rand.New(rand.NewPCG(o.Seed, nameStream(d.Name)))
	dir := Dir(root, d.Name)
	if err := writeSynthMarker(dir, o, synthFiles(d.Name, d.Masks, o)); err != nil {
		return err
	}
	for _, split := range []struct {
		name string
		n    int
	}{{"valid", o.Valid}, {"test", o.Test}} {
		for _, abnormal := range []bool{false, true} {
			cls := "good"
			if abnormal {
				cls = "Ungood"
			}
			withMask := abnormal && d.Masks
			imgDir := filepath.Join(dir, split.name, cls, "img")
			maskDir := filepath.Join(dir, split.name, "Ungood", "anomaly_mask")
			if err := makeInside(imgDir, dir); err != nil {
				return err
			}
			if withMask {
				if err := makeInside(maskDir, dir); err != nil {
					return err
				}
			}
			for _, name := range synthNames(d.Name, split.name, abnormal, split.n) {
				img, mask := synthImage(r, o.Size, d.Name == "Chest", abnormal)
				write := writePNG
				if !strings.EqualFold(filepath.Ext(name), ".png") {
					write = writeJPEG
				}
				if err := writeOwn(filepath.Join(imgDir, name), img, write); err != nil {
					return err
				}
				if withMask {
					if err := writeOwn(filepath.Join(maskDir, name), mask, writePNG); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// makeInside creates the folder sub of the dataset folder dir and refuses
// it when a link leads it out of dir.
func makeInside(sub, dir string) error {
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return fmt.Errorf("synth %s: %w", dir, err)
	}
	if !insideDir(sub, dir) {
		return fmt.Errorf("synth: %s leads out of %s through a link; remove the link or choose another --out", sub, dir)
	}
	return nil
}

// writeOwn writes img to path with write, unless path is something other
// than a regular file synth may replace.
func writeOwn(path string, img image.Image, write func(string, image.Image) error) error {
	if err := ownFile(path); err != nil {
		return err
	}
	return write(path, img)
}

// nameStream is the random stream of the dataset called name (FNV-1a).
func nameStream(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return h.Sum64()
}

// synthMarker is the file that marks a dataset folder as written by
// Synth, which may then write it again; any other folder is left alone.
// Below its first line (a note for people) it lists, after a "files:"
// line, every image and mask Synth writes there, relative to the folder:
// writing again removes those and nothing else.
const synthMarker = ".madclip-synth"

// synthFolder refuses a dataset folder synth may not write: one that
// exists and is not empty but holds no earlier synthetic dataset (real
// data is never mixed with synthetic images), or that is not a folder.
func synthFolder(dir string) error {
	if st, err := os.Lstat(dir); err == nil && !st.IsDir() {
		return fmt.Errorf("synth: %s is not a folder (a link or a file); synth writes only folders of its own", dir)
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && len(entries) == 0) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	if st, err := os.Lstat(filepath.Join(dir, synthMarker)); err != nil || !st.Mode().IsRegular() {
		return fmt.Errorf("synth: %s already holds files that madclip synth did not write (real data?); choose another --out", dir)
	}
	return nil
}

// replaceable refuses a path synth is to write in the dataset folder dir
// where something other than nothing or a file madclip wrote is: a link
// (to a file outside the dataset, perhaps), a folder, a pipe, someone
// else's file; or whose existing folder leads out of dir through a link.
func replaceable(path, dir string) error {
	if sub := filepath.Dir(path); isDir(sub) && !insideDir(sub, dir) {
		return fmt.Errorf("synth: %s leads out of %s through a link; remove the link or choose another --out", sub, dir)
	}
	if err := ownFile(path); err != nil {
		return err
	}
	// A synthetic scan, or an image an earlier synth marked as a picture
	// (before scans had their own mark), is replaced; nothing else is.
	if _, _, err := atomicfile.Destination(path, authorship.None); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	return nil
}

// clearSynthetic makes dir, which synthFolder accepted, ready for a
// synthetic dataset: the images and masks of an earlier one (those its
// marker lists, and that carry madclip's mark) are removed, so that a
// smaller set written over a larger one does not keep its extra images;
// files anyone else put there stay.
func clearSynthetic(dir string) error {
	marker := filepath.Join(dir, synthMarker)
	if _, err := os.Lstat(marker); errors.Is(err, fs.ErrNotExist) {
		return nil // a new or empty folder
	}
	f, err := regularfile.Open(marker)
	if err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, 64<<20))
	listed := false
	for sc.Scan() {
		rel := sc.Text()
		if !listed {
			listed = rel == "files:"
			continue
		}
		if !filepath.IsLocal(rel) || !IsImage(rel) {
			continue
		}
		p := filepath.Join(dir, rel)
		if !insideDir(filepath.Dir(p), dir) { // a folder replaced by a link to elsewhere
			continue
		}
		if st, err := os.Lstat(p); err == nil && st.Mode().IsRegular() {
			if ours, err := authorship.Written(p); err != nil || !ours {
				continue
			}
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("synth: remove the earlier %w", err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("synth: %s: %w", marker, err)
	}
	return nil
}

// ownFile refuses to write path when something other than a regular file
// is there (a link, which atomicfile would write through, to a file
// outside the dataset; a folder; a pipe).
func ownFile(path string) error {
	st, err := os.Lstat(path)
	if err != nil || st.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("synth: %s is %s, not a file synth wrote; remove it or choose another --out", path, regularfile.Kind(st.Mode()))
}

// insideDir reports whether the folder sub lies inside the folder dir
// once every link is followed.
func insideDir(sub, dir string) bool {
	s, err1 := filepath.EvalSymlinks(sub)
	d, err2 := filepath.EvalSymlinks(dir)
	sep := string(filepath.Separator)
	return err1 == nil && err2 == nil && strings.HasPrefix(s+sep, d+sep)
}

// synthFiles lists the images and masks Synth writes for one dataset,
// relative to its folder.
func synthFiles(name string, masks bool, o SynthOptions) []string {
	var files []string
	for _, split := range []struct {
		name string
		n    int
	}{{"valid", o.Valid}, {"test", o.Test}} {
		for _, abnormal := range []bool{false, true} {
			cls := "good"
			if abnormal {
				cls = "Ungood"
			}
			for _, n := range synthNames(name, split.name, abnormal, split.n) {
				files = append(files, filepath.Join(split.name, cls, "img", n))
				if abnormal && masks {
					files = append(files, filepath.Join(split.name, "Ungood", "anomaly_mask", n))
				}
			}
		}
	}
	return files
}

func writeSynthMarker(dir string, o SynthOptions, files []string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%s: %w", pe.Path, pe.Err)
		}
		return fmt.Errorf("synth: cannot create %s: %w", dir, err)
	}
	note := fmt.Sprintf("synthetic images written by madclip synth (seed %d, %d px, %d valid and %d test images per class); madclip synth may replace the files listed below\nfiles:\n", o.Seed, o.Size, o.Valid, o.Test)
	return atomicfile.Replace(filepath.Join(dir, synthMarker), 0o644, func(w io.Writer) error {
		if _, err := io.WriteString(w, note); err != nil {
			return err
		}
		for _, f := range files {
			if _, err := io.WriteString(w, f+"\n"); err != nil {
				return err
			}
		}
		return nil
	})
}

// synthNames names the n images of one class of a split: numbered, except
// that the valid split of a benchmark dataset carries every name of the
// authors' few-shot lists first (so the paper's protocol runs on it), with
// the list's extension (JPEG for Retina_OCT2017).
func synthNames(dataset, split string, abnormal bool, n int) []string {
	var names []string
	if split == "valid" {
		normal, ab := authorsNames(dataset)
		names = normal
		if abnormal {
			names = ab
		}
	}
	taken := map[string]bool{}
	for _, s := range names {
		taken[s] = true
	}
	for i := 0; len(names) < n; i++ {
		if name := fmt.Sprintf("%03d.png", i); !taken[name] {
			names = append(names, name)
		}
	}
	return names
}

func writePNG(path string, img image.Image) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error { return authorship.EncodeScanPNG(w, img) })
}

func writeJPEG(path string, img image.Image) error {
	return atomicfile.Write(path, 0o644, func(w io.Writer) error {
		return authorship.EncodeScanJPEG(w, img, &jpeg.Options{Quality: 95})
	})
}

// synthImage draws one grey image and its anomaly mask.
func synthImage(r *rand.Rand, size int, lungs, abnormal bool) (*image.Gray, *image.Gray) {
	s := float64(size)
	img := image.NewGray(image.Rect(0, 0, size, size))
	mask := image.NewGray(image.Rect(0, 0, size, size))
	type ellipse struct{ cx, cy, rx, ry float64 }
	var organs []ellipse
	if lungs {
		dy := s * (0.02 * (r.Float64() - 0.5))
		organs = []ellipse{
			{s * (0.30 + 0.03*(r.Float64()-0.5)), s*0.5 + dy, s * (0.16 + 0.02*r.Float64()), s * (0.32 + 0.03*r.Float64())},
			{s * (0.70 + 0.03*(r.Float64()-0.5)), s*0.5 + dy, s * (0.16 + 0.02*r.Float64()), s * (0.32 + 0.03*r.Float64())},
		}
	} else {
		organs = []ellipse{{s * (0.5 + 0.06*(r.Float64()-0.5)), s * (0.5 + 0.06*(r.Float64()-0.5)), s * (0.34 + 0.05*r.Float64()), s * (0.28 + 0.05*r.Float64())}}
	}
	inside := func(x, y float64) bool {
		for _, e := range organs {
			dx, dy := (x-e.cx)/e.rx, (y-e.cy)/e.ry
			if dx*dx+dy*dy <= 1 {
				return true
			}
		}
		return false
	}
	f1, f2, ph := 0.2+0.15*r.Float64(), 0.2+0.15*r.Float64(), 2*math.Pi*r.Float64()
	base := 85 + 20*r.Float64()
	val := make([]float64, size*size)
	for y := range size {
		for x := range size {
			v := 12 + 6*r.NormFloat64()
			if inside(float64(x), float64(y)) {
				v = base + 18*math.Sin(f1*float64(x)+f2*float64(y)+ph) + 7*r.NormFloat64()
			}
			val[y*size+x] = v
		}
	}
	if abnormal {
		// The anomaly sits inside an organ.
		e := organs[r.IntN(len(organs))]
		a := 2 * math.Pi * r.Float64()
		rad := 0.5 * r.Float64()
		cx, cy := e.cx+rad*e.rx*math.Cos(a), e.cy+rad*e.ry*math.Sin(a)
		kind := r.IntN(3)
		angle := math.Pi * r.Float64()
		blobR := s * (0.08 + 0.05*r.Float64())
		half := s * (0.10 + 0.04*r.Float64())
		for y := range size {
			for x := range size {
				fx, fy := float64(x), float64(y)
				if !inside(fx, fy) {
					continue
				}
				var hit bool
				v := val[y*size+x]
				switch kind {
				case 0: // a bright blob
					d := math.Hypot(fx-cx, fy-cy)
					hit = d <= blobR
					if hit {
						v = 215 + 10*r.NormFloat64()
					}
				case 1: // a streak
					u := (fx-cx)*math.Cos(angle) + (fy-cy)*math.Sin(angle)
					w := -(fx-cx)*math.Sin(angle) + (fy-cy)*math.Cos(angle)
					hit = math.Abs(u) <= s*0.2 && math.Abs(w) <= s*0.035
					if hit {
						v = 205 + 10*r.NormFloat64()
					}
				default: // foreign texture
					hit = math.Abs(fx-cx) <= half && math.Abs(fy-cy) <= half
					if hit {
						v = 40
						if (x/2+y/2)%2 == 0 {
							v = 210
						}
					}
				}
				if hit {
					val[y*size+x] = v
					mask.Pix[y*size+x] = 255
				}
			}
		}
	}
	for i, v := range val {
		img.Pix[i] = uint8(math.Max(0, math.Min(255, math.Round(v))))
	}
	return img, mask
}
