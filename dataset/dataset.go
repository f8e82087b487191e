// Package dataset reads the MVFA/MadCLIP benchmark layout (and a user's own
// data in the same layout), picks the few shots, builds the static
// augmented training set, and writes synthetic datasets.
//
// Layout: {root}/{Obj}_AD/{valid,test}/{good,Ungood}/img/*, with masks of
// abnormal images at {Obj}_AD/{split}/Ungood/anomaly_mask/{same name} for the
// datasets that have them.
package dataset

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"unicode"

	"madclip/imaging"
	"madclip/internal/plural"
	"madclip/internal/regularfile"
)

// Benchmark is one of the paper's datasets.
type Benchmark struct {
	Name  string
	Masks bool // whether its abnormal images come with anomaly masks
}

// Benchmarks are the six datasets of the paper, in the paper's order (a
// copy: the table itself is fixed).
func Benchmarks() []Benchmark { return slices.Clone(benchmarks) }

var benchmarks = []Benchmark{
	{"Brain", true}, {"Liver", true}, {"Retina_RESC", true},
	{"Retina_OCT2017", false}, {"Chest", false}, {"Histopathology", false},
}

// Sample is one image of a split.
type Sample struct {
	Path     string
	MaskPath string // "" for normal images and datasets without masks
	Abnormal bool
}

// Name is the image's file name.
func (s Sample) Name() string { return filepath.Base(s.Path) }

// Split is the images of one split of one dataset.
type Split struct {
	Dir      string // {root}/{Obj}_AD/{split}
	Samples  []Sample
	HasMasks bool
	// Skipped lists what the image folders hold besides images: files
	// that are not PNG or JPEG and subfolders (not searched), as paths,
	// hidden ones left out. SkipNote says them.
	Skipped []string
}

// SkipNote is one line naming what the split's image folders hold that is
// not read (a folder of .tif scans would otherwise look used), or "" when
// there is nothing.
func (s *Split) SkipNote() string {
	if len(s.Skipped) == 0 {
		return ""
	}
	var parts []string
	folders := 0
	for _, p := range s.Skipped {
		if strings.HasSuffix(p, string(filepath.Separator)) {
			folders++
		}
	}
	if files := len(s.Skipped) - folders; files > 0 {
		parts = append(parts, plural.Of(files, "file")+" that "+map[bool]string{true: "is", false: "are"}[files == 1]+" not PNG or JPEG")
	}
	if folders > 0 {
		parts = append(parts, plural.Of(folders, "subfolder")+" (not searched)")
	}
	return fmt.Sprintf("%s: skipping %s in its image folders (e.g. %s)", s.Dir, strings.Join(parts, " and "), s.Skipped[0])
}

// CheckName refuses a dataset name that is not a plain folder name: one
// that would reach outside the root (a path, "..") or is empty.
func CheckName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > 200 || strings.ContainsAny(name, "/\x00") {
		return fmt.Errorf("dataset %.60q: a dataset is named by its folder {name}_AD under the root, without a path", name)
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return fmt.Errorf("dataset %.60q: a control character in a dataset's name would break its lines in messages and tables", name)
	}
	return nil
}

// Dir is the folder of a dataset: {root}/{name}_AD.
func Dir(root, name string) string { return filepath.Join(root, name+"_AD") }

// IsImage reports whether a file name has an extension madclip reads
// (PNG or JPEG: .png, .jpg, .jpeg, .jpe, any case).
func IsImage(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".png", ".jpg", ".jpeg", ".jpe":
		return true
	}
	return false
}

// listImages returns the names of the images in dir, sorted, and the
// paths of what else it holds (hidden entries left out).
func listImages(dir string) (names, skipped []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if !IsImage(e.Name()) {
			if p := filepath.Join(dir, e.Name()); !strings.HasPrefix(e.Name(), ".") {
				if isDir(p) {
					p += string(filepath.Separator)
				}
				skipped = append(skipped, p)
			}
			continue
		}
		if e.IsDir() { // a split's image would be left out unseen
			return nil, nil, fmt.Errorf("%s is a folder with an image's name, not an image", filepath.Join(dir, e.Name()))
		}
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, skipped, nil
}

// ReadSplit lists a split ("valid" or "test") of the dataset called name
// under root. The dataset has masks when its Ungood folder has an
// anomaly_mask folder; then every abnormal image needs its mask. The
// benchmark's datasets with masks (Brain, Liver, Retina_RESC) must have it.
func ReadSplit(root, name, split string) (*Split, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if !isDir(Dir(root, name)) {
		return nil, Missing(root, name)
	}
	dir := filepath.Join(Dir(root, name), split)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("dataset %s: no folder %s (want {root}/%s_AD/%s/{good,Ungood}/img)", name, dir, name, split)
	}
	s := &Split{Dir: dir}
	maskDir := filepath.Join(dir, "Ungood", "anomaly_mask")
	if st, err := os.Stat(maskDir); err == nil && st.IsDir() {
		s.HasMasks = true
	}
	if !isDir(filepath.Join(dir, "Ungood")) { // said before the masks it would hold
		return nil, fmt.Errorf("dataset %s: no folder %s: a split needs its abnormal images in Ungood/img", name, filepath.Join(dir, "Ungood"))
	}
	for _, b := range benchmarks {
		if b.Name == name && b.Masks && !s.HasMasks {
			// Training and scoring would silently fall back to image labels.
			return nil, fmt.Errorf("dataset %s: %s is missing; this benchmark dataset has pixel masks, and without them the model would train and be evaluated without its segmentation head", name, maskDir)
		}
	}
	for _, cls := range []string{"good", "Ungood"} {
		imgDir := filepath.Join(dir, cls, "img")
		names, skipped, err := listImages(imgDir)
		if err != nil {
			return nil, fmt.Errorf("dataset %s: %w", name, err)
		}
		s.Skipped = append(s.Skipped, skipped...)
		if len(names) == 0 {
			return nil, fmt.Errorf("dataset %s: no PNG or JPEG images in %s", name, imgDir)
		}
		for _, n := range names {
			smp := Sample{Path: filepath.Join(imgDir, n), Abnormal: cls == "Ungood"}
			if smp.Abnormal && s.HasMasks {
				smp.MaskPath = filepath.Join(maskDir, n)
				if _, err := os.Stat(smp.MaskPath); errors.Is(err, fs.ErrNotExist) {
					return nil, fmt.Errorf("%s: no mask for this abnormal image (want %s)", smp.Path, smp.MaskPath)
				} else if pe := (*fs.PathError)(nil); errors.As(err, &pe) { // a link loop, a folder that cannot be searched
					return nil, fmt.Errorf("%s: its mask %s: %w", smp.Path, smp.MaskPath, pe.Err)
				} else if err != nil {
					return nil, fmt.Errorf("%s: its mask: %w", smp.Path, err)
				}
			}
			s.Samples = append(s.Samples, smp)
		}
	}
	if err := sameFileInBothClasses(s.Samples); err != nil {
		return nil, fmt.Errorf("dataset %s: %w", name, err)
	}
	return s, nil
}

// sameFileInBothClasses refuses a split in which one file is both normal
// and abnormal (a good/img that links to Ungood/img, a hard link): every
// metric would then be at chance, silently.
func sameFileInBothClasses(samples []Sample) error {
	type fileID struct{ dev, ino uint64 }
	normal := map[fileID]string{}
	id := func(p string) (fileID, bool) {
		st, err := os.Stat(p)
		if err != nil {
			return fileID{}, false // said when the image is read
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		if !ok {
			return fileID{}, false
		}
		return fileID{uint64(sys.Dev), sys.Ino}, true
	}
	for _, s := range samples {
		if s.Abnormal {
			continue
		}
		if k, ok := id(s.Path); ok {
			normal[k] = s.Path
		}
	}
	for _, s := range samples {
		if !s.Abnormal {
			continue
		}
		if k, ok := id(s.Path); ok && normal[k] != "" {
			return fmt.Errorf("%s and %s are the same file, normal and abnormal at once; each image belongs to one class", normal[k], s.Path)
		}
	}
	return nil
}

// Counts returns the numbers of normal and abnormal samples.
func Counts(samples []Sample) (normal, abnormal int) {
	for _, s := range samples {
		if s.Abnormal {
			abnormal++
		} else {
			normal++
		}
	}
	return normal, abnormal
}

// Image is a decoded, resized sample: RGB planes [3, size, size] in [0, 1]
// and, for datasets with masks, a binary mask [size, size] (zeros for normal
// images).
type Image struct {
	Pixels []float32
	Mask   []float32 // nil when the dataset has no masks
}

// Load decodes a sample and resizes it to size×size as the authors' code
// does with PIL: the image converted to RGB and resized with the bicubic
// filter; the mask converted to grey (convert("L")), resized with the
// nearest filter and binarised at 0.5. A mask
// whose size differs from its image's is an error naming the mask.
func Load(s Sample, size int, withMask bool) (Image, error) {
	img, err := imaging.Load(s.Path)
	if err != nil {
		return Image{}, err
	}
	return Prepare(img, s, size, withMask)
}

// Prepare is Load for an image already decoded.
func Prepare(img *imaging.RGB, s Sample, size int, withMask bool) (Image, error) {
	if err := resizable(s.Path, img.W, img.H, size); err != nil {
		return Image{}, err
	}
	out := Image{Pixels: img.Resize(size, size).CHW()}
	if !withMask {
		return out, nil
	}
	out.Mask = make([]float32, size*size)
	if s.MaskPath == "" {
		return out, nil
	}
	m, err := imaging.LoadMask(s.MaskPath, s.Path, img.W, img.H)
	if err != nil {
		return Image{}, err
	}
	r := m.ResizeNearest(size, size)
	for i := range out.Mask {
		if r.Pix[i] > 127 { // > 0.5 after /255
			out.Mask[i] = 1
		}
	}
	return out, nil
}

// maxResizeBytes is the memory a resize may take beyond the image's own
// size (see imaging.ResizeBytes).
const maxResizeBytes = 512 << 20

// resizable refuses the w×h image at path when resizing it to size² would
// take far more memory than the image itself: a strip thousands of times
// longer than wide.
func resizable(path string, w, h, size int) error {
	if need := imaging.ResizeBytes(w, h, size, size); need > max(3*int64(w)*int64(h), maxResizeBytes) {
		return fmt.Errorf("%s: a %d×%d image is too elongated to resize to %d×%d (it would take %.1f GB); crop it first", path, w, h, size, size, float64(need)/1e9)
	}
	return nil
}

// CheckHeaders reads the header of every image of the split and of every
// mask: a file that is empty, not a PNG or JPEG, over the pixel limit or
// too elongated to resize to size², or a mask of another size than its
// scan, is found before hours of training rather than after them. Damage
// past the header still shows only when the image is decoded.
func (s *Split) CheckHeaders(l imaging.Limits, size int) error {
	for _, smp := range s.Samples {
		w, h, err := imaging.Size(smp.Path)
		if err != nil {
			return err
		}
		if err := l.Allows(w, h); err != nil {
			return fmt.Errorf("%s: %w", smp.Path, err)
		}
		if size > 0 {
			if err := resizable(smp.Path, w, h, size); err != nil {
				return err
			}
		}
		if smp.MaskPath != "" {
			if err := imaging.CheckMaskSize(smp.MaskPath, smp.Path, w, h); err != nil {
				return err
			}
		}
	}
	return nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// Digests are the SHA-256 of each sample's image and mask bytes (each
// file's length first): a fingerprint of the data a run trained on, which
// changes when any of those files does.
func Digests(samples []Sample) ([]string, error) {
	out := make([]string, len(samples))
	var n [8]byte
	for i, s := range samples {
		h := sha256.New()
		for _, p := range []string{s.Path, s.MaskPath} {
			if p == "" {
				continue
			}
			if err := hashFile(h, p, n[:]); err != nil {
				return nil, err
			}
		}
		out[i] = hex.EncodeToString(h.Sum(nil))
	}
	return out, nil
}

// hashFile writes the file's length (into the 8-byte scratch n) and bytes
// to h.
func hashFile(h hash.Hash, path string, n []byte) error {
	f, err := regularfile.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	binary.LittleEndian.PutUint64(n, uint64(st.Size()))
	h.Write(n)
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
