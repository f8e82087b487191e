package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"unicode/utf16"
	"unicode/utf8"

	"madclip/atomicfile"
	"madclip/authorship"
	"madclip/dataset"
	"madclip/internal/samepath"
)

// perImageOutputs names one output per input image under dest, ending in
// suffix ("_heatmap.png"). Unless folder is set (a folder among the
// arguments), for a single input and a dest that is not a folder and does
// not end in a separator, dest itself is the output. Otherwise the outputs mirror the
// inputs' folders below their deepest common folder, so that dA/x.png and
// dB/x.png give dest/dA/x_heatmap.png and dest/dB/x_heatmap.png; images
// that differ only in extension (x.png, x.jpg) keep it in the name
// (x_png_heatmap.png). A mirrored folder named like a dataset's
// (Brain_AD) becomes Brain_AD_out, so that the outputs never make a folder
// that madclip would later take for a dataset and refuse to write into.
// The names depend only on the set of inputs.
func perImageOutputs(inputs []string, dest, suffix string, folder bool) ([]string, error) {
	if dest == "" {
		return nil, nil
	}
	st, err := os.Stat(dest)
	exists, isFolder := err == nil, err == nil && st.IsDir()
	if len(inputs) == 1 && !folder && !isFolder && !strings.HasSuffix(dest, string(filepath.Separator)) {
		return []string{dest}, nil
	}
	if exists && !isFolder {
		return nil, fmt.Errorf("%s is a file, but for a folder of images or several images it names the folder of their outputs", dest)
	}
	if ext := strings.ToLower(filepath.Ext(dest)); !exists && !strings.HasSuffix(dest, string(filepath.Separator)) && (dataset.IsImage(dest) || formatsByExtension[ext] != "") {
		return nil, fmt.Errorf("%s has a file's name, but for a folder of images or several images it names the folder of their outputs (made if need be); give a folder's name, as %s/ (or %s/ if that is meant)", dest, strings.TrimSuffix(dest, filepath.Ext(dest)), dest)
	}
	abs := make([]string, len(inputs))
	for i, in := range inputs {
		a, err := filepath.Abs(in)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", in, err)
		}
		abs[i] = a
	}
	root := filepath.Dir(abs[0])
	for _, a := range abs[1:] {
		for !within(a, root) {
			root = filepath.Dir(root)
		}
	}
	stems := make([]string, len(inputs))
	count := map[string]int{}
	for i, a := range abs {
		rel, err := filepath.Rel(root, a)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", inputs[i], err)
		}
		stems[i] = filepath.Join(outsideDatasetNames(filepath.Dir(rel)), strings.TrimSuffix(filepath.Base(rel), filepath.Ext(rel)))
		count[stems[i]]++
	}
	out := make([]string, len(inputs))
	seen := map[string]string{}
	for i, a := range abs {
		stem := stems[i]
		if count[stem] > 1 {
			stem += "_" + strings.TrimPrefix(filepath.Ext(a), ".")
		}
		out[i] = filepath.Join(dest, stem+suffix)
		if prev, ok := seen[out[i]]; ok {
			if samepath.Same(prev, inputs[i]) {
				return nil, fmt.Errorf("%s and %s are the same image; give it once", prev, inputs[i])
			}
			return nil, fmt.Errorf("%s and %s would share the output %s", prev, inputs[i], out[i])
		}
		seen[out[i]] = inputs[i]
	}
	return out, nil
}

// outsideDatasetNames renames each folder of the relative path rel that
// mkdirAll would refuse to make (see datasetNamed): Brain_AD becomes
// Brain_AD_out.
func outsideDatasetNames(rel string) string {
	if rel == "." {
		return rel
	}
	parts := strings.Split(rel, string(filepath.Separator))
	for i, p := range parts {
		if strings.HasSuffix(p, "_AD") {
			parts[i] = p + "_out"
		}
	}
	return filepath.Join(parts...)
}

// within reports whether path a lies below folder dir.
func within(a, dir string) bool {
	rel, err := filepath.Rel(dir, a)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// checkOutputs refuses, before any work starts, an output that is one of
// the inputs (a scan, the checkpoint, the weights), two outputs at one
// path, and an output at something atomicfile will not replace (a file
// madclip did not write, a folder, a device, a pipe). outputs and inputs map a path to what it is for
// ("--heatmap", "image").
func checkOutputs(outputs, inputs []namedPath) error {
	return newInputSet(inputs).checkAll(outputs)
}

// checkAll is check for each output, and refuses two outputs at one path.
func (s *inputSet) checkAll(outputs []namedPath) error {
	seen := map[string]namedPath{}
	for _, o := range outputs {
		if o.path == "" {
			continue
		}
		if err := s.check(o); err != nil {
			return err
		}
		key := absPath(o.path)
		if prev, ok := seen[key]; ok {
			return fmt.Errorf("%s and %s both write %s", prev.role, o.role, o.path)
		}
		seen[key] = o
	}
	return nil
}

// inputSet is what a command reads, by absolute path and by file identity
// (device and inode, which catches links and other spellings), each looked
// up once: a folder of 10,000 scans is checked in linear time. Outputs
// whose names are known only later (eval's failure pictures) are checked
// against it as they are written.
type inputSet struct {
	byPath map[string]namedPath
	byID   map[fileID]namedPath
}

type fileID struct{ dev, ino uint64 }

func newInputSet(inputs []namedPath) *inputSet {
	s := &inputSet{byPath: map[string]namedPath{}, byID: map[fileID]namedPath{}}
	for _, in := range inputs {
		if in.path == "" {
			continue
		}
		s.byPath[absPath(in.path)] = in
		if k, ok := identity(in.path); ok {
			s.byID[k] = in
		}
	}
	return s
}

// check refuses an output that is an input, that atomicfile would not
// replace, or that would land (itself or through a link) inside a
// dataset's folder.
func (s *inputSet) check(o namedPath) error {
	if err := nameFits(o.role, o.path); err != nil {
		return err
	}
	in, clash := s.byPath[absPath(o.path)]
	if !clash {
		if k, ok := identity(o.path); ok {
			in, clash = s.byID[k]
		}
	}
	if clash {
		return fmt.Errorf("%s %s is %s: refusing to overwrite an input", o.role, o.path, in.describe())
	}
	if std := standardStream(o.path); std != "" {
		return fmt.Errorf("%s %s is this command's %s (the file it is redirected to would be replaced): give the output a file's own name", o.role, o.path, std)
	}
	if d, ok := datasetHolding(o.path); ok {
		return insideDataset(o.role, o.path, atomicfile.Target(o.path), d)
	}
	if _, _, err := atomicfile.Destination(o.path, o.kind); err != nil {
		return fmt.Errorf("%s: %w", o.role, err)
	}
	return nil
}

// standardStream names the standard stream ("standard output") that the
// regular file at p is, through /dev/stdout or a redirection's own path;
// "" when it is none of them (a terminal or device at p is refused as not
// a regular file).
func standardStream(p string) string {
	id, ok := identity(p)
	if !ok {
		return ""
	}
	for _, s := range []struct {
		f    *os.File
		name string
	}{{os.Stdout, "standard output"}, {os.Stderr, "standard error"}} {
		st, err := s.f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok && (fileID{uint64(sys.Dev), uint64(sys.Ino)}) == id {
			return s.name
		}
	}
	return ""
}

// identity is the device and inode of the file at p (after links).
func identity(p string) (fileID, bool) {
	st, err := os.Stat(p)
	if err != nil {
		return fileID{}, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(sys.Dev), uint64(sys.Ino)}, true
}

// splitInputs names the images and masks of a dataset's splits as inputs;
// a split that cannot be read adds nothing (the command reports it when it
// reads the split).
func splitInputs(root, name string, splits ...string) []namedPath {
	var out []namedPath
	for _, sp := range splits {
		s, err := dataset.ReadSplit(root, name, sp)
		if err != nil {
			continue
		}
		for _, smp := range s.Samples {
			out = append(out, namedPath{role: "image", path: smp.Path})
			if smp.MaskPath != "" {
				out = append(out, namedPath{role: "mask", path: smp.MaskPath})
			}
		}
	}
	return out
}

// namedPath is a file the command reads or writes, with its role for
// messages.
type namedPath struct {
	role, path string
	kind       authorship.Kind // what an output will hold (None for an input)
}

func (n namedPath) describe() string {
	switch n.role {
	case "image":
		return "an input image"
	case "mask":
		return "an input mask"
	}
	return "the " + n.role + " file"
}

// writableFolder checks, before hours of work, that files can be created
// in the folder that will hold path, and that a file of kind may replace
// what is there.
func writableFolder(flag, path string, kind authorship.Kind) error {
	if err := canCreateIn(flag+" "+path, atomicfile.Folder(path)); err != nil {
		return err
	}
	if _, _, err := atomicfile.Destination(path, kind); err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	return nil
}

// canCreateIn checks that files can be created in the folder dir, by
// creating one; what names the output in errors. A missing folder is not
// made: a file output's folder is a mistyped one as often as a new one.
func canCreateIn(what, dir string) error {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: its folder %s does not exist", what, dir)
	}
	if err != nil {
		return fmt.Errorf("%s: its folder: %w", what, err)
	}
	if !st.IsDir() {
		return fmt.Errorf("%s: %s is not a folder", what, dir)
	}
	f, err := os.CreateTemp(dir, ".madclip-probe-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) { // the probe's name means nothing to the user
			err = pe.Err
		}
		return fmt.Errorf("%s: cannot create files in %s: %w", what, dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// outputKind says whether an output path names a file or a folder.
type outputKind int

const (
	fileOutput outputKind = iota
	folderOutput
)

// outsideDatasets refuses an output (a file or a folder, as kind says)
// inside the folder of a dataset (after links): one of names, or any other
// {name}_AD folder under root. A report or checkpoint written among the
// scans would be read back as a scan, and clearing old outputs there could
// remove one. (A file output is also checked by name, on every spelling
// of its path, when it goes through checkOutputs, as every one does.)
func outsideDatasets(flag, path string, kind outputKind, root string, names []string) error {
	dir, target := path, path
	if kind == fileOutput {
		target = atomicfile.Target(path) // where a link at path leads is what gets written
		dir = atomicfile.Folder(target)
	}
	at := resolveDir(dir)
	for _, d := range datasetFolders(root, names) {
		// The dataset's folder, and its splits where they lie (a split may
		// be a link to a folder elsewhere).
		for _, f := range []string{d, filepath.Join(d, "test"), filepath.Join(d, "valid")} {
			if within(at, resolveDir(f)) {
				return insideDataset(flag, path, target, d)
			}
		}
	}
	if kind == folderOutput {
		if d, ok := datasetAbove(path); ok {
			return insideDataset(flag, path, target, d)
		}
	}
	return nil
}

// wellNamed refuses a file output whose name says it is something it is
// not (want: its extension, as ".pth"), itself or where a link at path
// leads: see imageNamed and formatNamed.
func wellNamed(flag, path, want string) error {
	if err := fileNamed(flag, path, want); err != nil {
		return err
	}
	if err := imageNamed(flag, path, want); err != nil {
		return err
	}
	return formatNamed(flag, path, want)
}

// fileNamed refuses a file output given as a folder's path (ending in
// "/", "." or ".."), before any work rather than at the write.
func fileNamed(flag, path, want string) error {
	base := filepath.Base(path)
	if strings.HasSuffix(path, string(filepath.Separator)) || base == "." || base == ".." {
		return fmt.Errorf("%s %s names a folder; give a file's name (a %s name)", flag, path, want)
	}
	return nil
}

// imageNamed refuses a file output that is no image but has an image's
// name, so that a mistyped command cannot put a model in place of a scan.
// (Whether it lies in a dataset is checkOutputs' part.)
func imageNamed(flag, path, want string) error {
	target := atomicfile.Target(path) // what a link at path leads to is what gets written
	if dataset.IsImage(path) || dataset.IsImage(target) {
		return fmt.Errorf("%s %s%s has an image's name; give the file a %s name", flag, path, linksTo(path, target), want)
	}
	return nil
}

// formatNamed refuses a file output with the name of another format than
// want's, so that a torch.save archive is not taken for a safetensors file
// or the other way round.
func formatNamed(flag, path, want string) error {
	target := atomicfile.Target(path)
	for _, name := range []string{path, target} {
		ext := strings.ToLower(filepath.Ext(name))
		if f, ok := formatsByExtension[ext]; ok && f != formatsByExtension[want] {
			return fmt.Errorf("%s %s%s has the name of %s, but it gets %s; give the file a %s name", flag, path, linksTo(path, target), f, formatsByExtension[want], want)
		}
	}
	return nil
}

// formatsByExtension are the formats that files madclip writes are taken
// for by their extension.
var formatsByExtension = map[string]string{
	".safetensors": "a safetensors file",
	".pth":         "a torch.save archive",
	".pt":          "a torch.save archive",
	".json":        "a JSON file",
	".bin":         "a torch.save archive", // Hugging Face's pytorch_model.bin
	".npy":         "a NumPy array",
}

// datasetAbove finds, from the path itself, the dataset folder (a
// {name}_AD folder holding a test or valid split) that dir is or lies
// in, under any of its spellings (see spellings): a link may hide the
// {name}_AD name on either side.
func datasetAbove(dir string) (string, bool) {
	for _, s := range spellings(dir) {
		if d, ok := datasetUp(s); ok {
			return d, true
		}
	}
	return "", false
}

// datasetHolding is datasetAbove for the folder of a file, where the
// file itself may be a link into a dataset.
func datasetHolding(file string) (string, bool) {
	for _, s := range spellings(file) {
		if d, ok := datasetUp(filepath.Dir(s)); ok {
			return d, true
		}
	}
	return "", false
}

// datasetUp walks up from the absolute folder dir to the first dataset
// folder, by name.
func datasetUp(dir string) (string, bool) {
	for d := dir; ; d = filepath.Dir(d) {
		if strings.HasSuffix(filepath.Base(d), "_AD") && (isDir(filepath.Join(d, "test")) || isDir(filepath.Join(d, "valid"))) {
			return d, true
		}
		if filepath.Dir(d) == d {
			return "", false
		}
	}
}

// maxLinkHops is how many links spellings follows before it stops, as the
// kernel gives up on a loop.
const maxLinkHops = 40

// spellings lists the absolute forms of p met while its links are followed
// one at a time: p as given, then p with the first link in it replaced by
// the link's text, and so on to p resolved. A dataset is known by its
// {name}_AD name, which a link can hide: ds/Brain_AD -> ../real, or a
// folder or file that links into ds/Brain_AD/test.
func spellings(p string) []string {
	cur := absPath(p)
	out := []string{cur}
	for range maxLinkHops {
		next, ok := followFirstLink(cur)
		if !ok {
			break
		}
		cur = next
		out = append(out, cur)
	}
	return out
}

// followFirstLink replaces the first component of the absolute path p that
// is a symbolic link with the link's text, and reports false when no
// existing component is a link.
func followFirstLink(p string) (string, bool) {
	parts := strings.Split(strings.TrimPrefix(p, string(filepath.Separator)), string(filepath.Separator))
	prefix := string(filepath.Separator)
	for i, part := range parts {
		cand := filepath.Join(prefix, part)
		st, err := os.Lstat(cand)
		if err != nil {
			return "", false
		}
		if st.Mode()&os.ModeSymlink != 0 {
			t, err := os.Readlink(cand)
			if err != nil {
				return "", false
			}
			if !filepath.IsAbs(t) {
				t = filepath.Join(prefix, t)
			}
			return filepath.Join(append([]string{t}, parts[i+1:]...)...), true
		}
		prefix = cand
	}
	return "", false
}

// insideDataset is the refusal of an output (given as path, written at
// target) that would land in the dataset folder d.
func insideDataset(role, path, target, d string) error {
	return fmt.Errorf("%s %s%s is inside the dataset folder %s: madclip writes nothing into a dataset", role, path, linksTo(path, target), d)
}

// linksTo says, for a message, where a link at path leads ("" when path is
// no link).
func linksTo(path, target string) string {
	if target == path {
		return ""
	}
	return " (a link to " + target + ")"
}

// datasetFolders lists the folders of the datasets names and of every
// other {name}_AD folder (or link to one) under root.
func datasetFolders(root string, names []string) []string {
	var dirs []string
	seen := map[string]bool{}
	add := func(n string) {
		if dataset.CheckName(n) == nil && !seen[n] {
			seen[n] = true
			dirs = append(dirs, dataset.Dir(root, n))
		}
	}
	for _, n := range names {
		add(n)
	}
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), "_AD")
		if !ok || n == "" {
			continue
		}
		if st, err := os.Stat(filepath.Join(root, e.Name())); err == nil && st.IsDir() {
			add(n)
		}
	}
	return dirs
}

// resolveDir is p made absolute with every link followed, as far as p
// exists; the rest is appended as given.
func resolveDir(p string) string {
	p = absPath(p)
	var rest []string
	for cur := p; ; cur = filepath.Dir(cur) {
		if r, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		}
		if filepath.Dir(cur) == cur {
			return p
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
	}
}

// madeFolders records the folders a command creates for its outputs
// before the work, so that a run that fails can remove those left empty.
type madeFolders []string

// mkdirAll is os.MkdirAll(dir, 0o755) that records each folder it creates
// and never makes one named like a dataset's (see datasetNamed). On
// failure, what it made is removed again.
func (m *madeFolders) mkdirAll(dir string) error {
	var missing []string
	abs := absPath(dir) // ".." as the kernel reads it
	for d := abs; d != filepath.Dir(d); d = filepath.Dir(d) {
		if _, err := os.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		missing = append(missing, d)
	}
	for i := len(missing) - 1; i >= 0; i-- { // the outermost first
		if datasetNamed(missing[i]) {
			return fmt.Errorf("%s would be made, a folder with a dataset's name: madclip writes nothing into a dataset", missing[i])
		}
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		madeFolders(missing).removeEmpty()
		return err
	}
	*m = append(*m, missing...)
	return nil
}

// datasetNamed reports whether a folder at the absolute path d would make
// a dataset of its folder by its name: a {name}_AD folder, or a split
// (test, valid) inside one.
func datasetNamed(d string) bool {
	base := filepath.Base(d)
	if strings.HasSuffix(base, "_AD") {
		return true
	}
	return (base == "test" || base == "valid") && strings.HasSuffix(filepath.Base(filepath.Dir(d)), "_AD")
}

// removeEmpty removes the recorded folders that are still empty, deepest
// first; one holding anything stays.
func (m madeFolders) removeEmpty() {
	ds := append([]string(nil), m...)
	sort.Slice(ds, func(i, j int) bool { return len(ds[i]) > len(ds[j]) })
	for _, d := range ds {
		os.Remove(d)
	}
}

// maxNameBytes is the longest file name Linux filesystems take (NAME_MAX).
const maxNameBytes = 255

// nameFits refuses an output whose file name is too long to create, before
// any work: per-image outputs add a suffix to the input's name, which may
// itself be near the limit.
func nameFits(role, path string) error {
	if n := len(filepath.Base(path)); n > maxNameBytes {
		return fmt.Errorf("%s %s: its file name is %d bytes, more than the %d a file name may have; give the output a shorter name or the input a shorter one",
			role, elide(path, 100), n, maxNameBytes)
	}
	return nil
}

// elide shortens a path for a message to about max characters, keeping
// both ends around "...", written as one line.
func elide(s string, max int) string {
	r := []rune(oneLine(s))
	if len(r) <= max {
		return string(r)
	}
	return string(r[:max/2]) + "..." + string(r[len(r)-max/2:])
}

// marshalJSON is json.Marshal (json.MarshalIndent with indent) whose output
// shows nothing invisible: the characters oneLine escapes in text (bidi
// and zero-width marks, C1 controls, the BOM) that encoding/json leaves
// raw are written as \uXXXX escapes, which read back as the same string.
// Strings from files (paths, a checkpoint's words) cannot reorder or hide
// what a terminal shows of madclip's JSON.
func marshalJSON(v any, indent string) ([]byte, error) {
	var b []byte
	var err error
	if indent == "" {
		b, err = json.Marshal(v)
	} else {
		b, err = json.MarshalIndent(v, "", indent)
	}
	// Below 0x7f the encoder escapes what needs it; the layout's newlines stay.
	invisible := func(r rune) bool { return r >= 0x7f && isControl(r) }
	if err != nil || !bytes.ContainsFunc(b, invisible) {
		return b, err
	}
	out := make([]byte, 0, len(b)+64)
	for _, r := range string(b) {
		if !invisible(r) {
			out = utf8.AppendRune(out, r)
			continue
		}
		for _, u := range utf16.Encode([]rune{r}) {
			out = fmt.Appendf(out, `\u%04x`, u)
		}
	}
	return out, nil
}
