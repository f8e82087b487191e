package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"madclip/checkpoint"
	"madclip/internal/cliptest"
	"madclip/internal/reftest"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/torch"

	"github.com/urfave/cli/v2"
)

var madclipBin string

// testRoot holds what the package's tests share (the binary, the vocab, a
// trained model); TestMain removes it.
var testRoot string

// TestMain builds the real binary once: the CLI is tested as users run it.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "madclip-cli")
	if err != nil {
		panic(err)
	}
	testRoot = dir
	madclipBin = filepath.Join(dir, "madclip")
	if out, err := exec.Command("go", "build", "-o", madclipBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building madclip: %v\n%s", err, out)
		os.Exit(1)
	}
	vocabFile = filepath.Join(dir, "vocab.txt.gz")
	if err := os.WriteFile(vocabFile, bpe.DefaultVocab(), 0o644); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// vocabFile is a copy of the built-in vocab on disk, for --vocab.
var vocabFile string

// madclip runs the binary with a clean weights search path.
func madclip(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(madclipBin, args...)
	cmd.Env = append(os.Environ(), "MADCLIP_WEIGHTS="+t.TempDir(), "XDG_CACHE_HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// wantFailure checks a clean failure: non-zero exit, the error as the last
// line of stderr (after any progress lines), naming what, no Go panic.
func wantFailure(t *testing.T, what string, stderr string, code int) {
	t.Helper()
	if code == 0 {
		t.Errorf("exit 0, want a failure mentioning %q", what)
	}
	if strings.Contains(stderr, "panic") || strings.Contains(stderr, "goroutine ") {
		t.Errorf("Go panic: %s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(stderr), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "madclip: ") {
		t.Errorf("stderr does not end with a one-line error: %q", stderr)
	}
	if !strings.Contains(last, what) {
		t.Errorf("error %q does not mention %q", last, what)
	}
}

// tinyWeights writes a tiny random CLIP with OpenAI's names.
func tinyWeights(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "tiny.safetensors")
	if _, err := os.Stat(p); err != nil { // written once per folder
		cliptest.WriteTiny(t, p, 5, torch.Float32)
	}
	return p
}

func TestTokenizeCLI(t *testing.T) {
	out, _, code := madclip(t, nil, "tokenize", "a photo of a cat", "Hello, World!")
	if code != 0 || out != "49406 320 1125 539 320 2368 49407\n49406 3306 267 1002 256 49407\n" {
		t.Errorf("exit %d, output %q", code, out)
	}
	// --vocab takes a file instead of the built-in vocab.
	if o, _, code := madclip(t, nil, "tokenize", "--vocab", vocabFile, "flawless Brain"); code != 0 || o != "49406 15531 4812 49407\n" {
		t.Errorf("--vocab: exit %d, output %q", code, o)
	}
	notVocab := filepath.Join(t.TempDir(), "v.txt")
	os.WriteFile(notVocab, []byte("hello\n"), 0o644)
	_, e, code := madclip(t, nil, "tokenize", "--vocab", notVocab, "x")
	wantFailure(t, notVocab, e, code)
	_, e, code = madclip(t, nil, "tokenize", "--vocab", "/no/such/vocab.gz", "x")
	wantFailure(t, "/no/such/vocab.gz", e, code)
	_, e, code = madclip(t, nil, "tokenize")
	wantFailure(t, "TEXT", e, code)
}

func TestWeightsConvertCLI(t *testing.T) {
	dir := t.TempDir()
	in := tinyWeights(t, dir)
	out := filepath.Join(dir, "out.safetensors")
	o, e, code := madclip(t, nil, "weights", "convert", in, out)
	if code != 0 || !strings.Contains(o, "wrote "+out) {
		t.Fatalf("exit %d: %s %s", code, o, e)
	}
	text := filepath.Join(dir, "notes.pt")
	os.WriteFile(text, []byte("hello"), 0o644)
	bad := filepath.Join(dir, "bad.safetensors")
	_, e, code = madclip(t, nil, "weights", "convert", text, bad)
	wantFailure(t, text, e, code)
	if _, err := os.Stat(bad); err == nil {
		t.Error("output written for a bad input")
	}
	_, e, code = madclip(t, nil, "weights", "convert", in)
	wantFailure(t, "IN and OUT", e, code)
	// With --vocab: converting again keeps the same vocab in place, also
	// when --vocab names that very file.
	vocab := filepath.Join(t.TempDir(), "vocab.gz")
	os.WriteFile(vocab, bpe.DefaultVocab(), 0o644)
	copied := filepath.Join(dir, "bpe_simple_vocab_16e6.txt.gz")
	for i, v := range []string{vocab, vocab, copied} {
		o, e, code := madclip(t, nil, "weights", "convert", "--vocab", v, in, out)
		if code != 0 {
			t.Errorf("--vocab %s: exit %d: %s %s", v, code, o, e)
		}
		// The copy is told of when it is made, not when the same is there.
		if said := strings.Contains(o, "copied the vocab "+v+" to "+copied+"\n"); said != (i == 0) {
			t.Errorf("--vocab %s, run %d: %q", v, i+1, o)
		}
	}
	if b, _ := os.ReadFile(copied); !bytes.Equal(b, bpe.DefaultVocab()) {
		t.Error("the vocab copy is not the vocab")
	}
	// Another vocab beside OUT is refused for what it is; a --vocab that
	// is missing or not a vocab is named before that.
	other := filepath.Join(t.TempDir(), "other.gz")
	os.WriteFile(other, append(bpe.DefaultVocab()[:len(bpe.DefaultVocab()):len(bpe.DefaultVocab())], 0), 0o644)
	_, e, code = madclip(t, nil, "weights", "convert", "--vocab", other, in, out)
	wantFailure(t, copied+": it exists and is another file than --vocab; refusing to replace it", e, code)
	_, e, code = madclip(t, nil, "weights", "convert", "--vocab", filepath.Join(dir, "nope.gz"), in, out)
	wantFailure(t, "--vocab: load vocab: "+filepath.Join(dir, "nope.gz")+": no such file or directory", e, code)
	if b, _ := os.ReadFile(copied); !bytes.Equal(b, bpe.DefaultVocab()) {
		t.Error("the vocab copy was replaced")
	}
}

func TestWeightsDownloadCLI(t *testing.T) {
	dir := t.TempDir()
	weightsFile := tinyWeights(t, dir)
	wbytes, _ := os.ReadFile(weightsFile)
	var mu sync.Mutex
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.URL.Path)
		mu.Unlock()
		if r.URL.Path != "/tiny.safetensors" {
			http.NotFound(w, r)
			return
		}
		w.Write(wbytes)
	}))
	defer srv.Close()
	dest := t.TempDir()
	sum := sha256hex(wbytes)
	// The mirror serves a verified file, but a tiny CLIP, not ViT-B/32: it
	// is downloaded and checked, then refused before it gets the name.
	_, e, code := madclip(t, nil, "weights", "download", "--quiet", "--dir", dest,
		"--url", srv.URL+"/tiny.safetensors", "--sha256", sum, "ViT-B/32")
	wantFailure(t, "not the CLIP expected", e, code)
	if _, err := os.Stat(filepath.Join(dest, "ViT-B-32.safetensors")); err == nil {
		t.Error("a tiny CLIP was saved as ViT-B-32.safetensors")
	}
	// The verified download converts to no ViT-B/32 however often it is
	// retried: it is removed, not left for the next try to fail on.
	wantFailure(t, "the download is removed", e, code)
	if left, _ := filepath.Glob(filepath.Join(dest, "*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	// Only the mirror's file was asked for: the vocab is built in, so a
	// network that reaches only the mirror suffices.
	mu.Lock()
	if len(asked) == 0 || slices.ContainsFunc(asked, func(p string) bool { return p != "/tiny.safetensors" }) {
		t.Errorf("requests %v", asked)
	}
	mu.Unlock()
	if _, err := os.Stat(filepath.Join(dest, "bpe_simple_vocab_16e6.txt.gz")); err == nil {
		t.Error("a vocab was fetched")
	}
	// With --keep the verified original stays though it cannot convert,
	// and a later download without --keep leaves it too: it was kept before.
	kept := t.TempDir()
	original := filepath.Join(kept, "ViT-B-32.download.safetensors")
	for _, keep := range []string{"--keep", "--keep=false"} {
		_, e, code = madclip(t, nil, "weights", "download", "--quiet", keep, "--dir", kept,
			"--url", srv.URL+"/tiny.safetensors", "--sha256", sum, "ViT-B/32")
		wantFailure(t, "not the CLIP expected", e, code)
		if strings.Contains(e, "removed") || !strings.Contains(e, "(the download stays as "+original+": kept)") {
			t.Errorf("%s: %s", keep, e)
		}
		if b, err := os.ReadFile(original); err != nil || sha256hex(b) != sum {
			t.Errorf("%s: the original is not kept: %v", keep, err)
		}
	}
	// A wrong checksum fails cleanly and leaves nothing under the final name.
	dest2 := t.TempDir()
	_, e, code = madclip(t, nil, "weights", "download", "--quiet", "--dir", dest2,
		"--url", srv.URL+"/tiny.safetensors", "--sha256", strings.Repeat("0", 64), "ViT-B/32")
	wantFailure(t, "SHA-256", e, code)
	if _, err := os.Stat(filepath.Join(dest2, "ViT-B-32.safetensors")); err == nil {
		t.Error("converted file exists after a checksum failure")
	}
	// Someone else's file under the final name is refused before anything
	// is fetched, and left as it was.
	dest3 := t.TempDir()
	theirs := filepath.Join(dest3, "ViT-B-32.safetensors")
	os.WriteFile(theirs, []byte("my own ViT-B/32"), 0o644)
	mu.Lock()
	before := len(asked)
	mu.Unlock()
	_, e, code = madclip(t, nil, "weights", "download", "--quiet", "--dir", dest3,
		"--url", srv.URL+"/tiny.safetensors", "--sha256", sum, "ViT-B/32")
	wantFailure(t, theirs+": it exists and madclip did not write it", e, code)
	mu.Lock()
	if len(asked) != before {
		t.Errorf("%d requests made before the refusal", len(asked)-before)
	}
	mu.Unlock()
	if b, _ := os.ReadFile(theirs); string(b) != "my own ViT-B/32" {
		t.Error("someone else's file was replaced")
	}
	// A dataset's folder is no place for weights: refused before a request.
	data := filepath.Join(t.TempDir(), "Brain_AD")
	os.MkdirAll(filepath.Join(data, "test", "good", "img"), 0o755)
	_, e, code = madclip(t, nil, "weights", "download", "--quiet", "--dir", data,
		"--url", srv.URL+"/tiny.safetensors", "--sha256", sum, "ViT-B/32")
	wantFailure(t, "dataset", e, code)
	mu.Lock()
	if len(asked) != before {
		t.Errorf("%d requests made before the refusal", len(asked)-before)
	}
	mu.Unlock()
	if left, _ := filepath.Glob(filepath.Join(data, "*.*")); len(left) > 0 {
		t.Errorf("written into the dataset: %v", left)
	}
	// Folders made for a download that fails go again.
	fresh := filepath.Join(t.TempDir(), "new")
	_, e, code = madclip(t, nil, "weights", "download", "--quiet", "--dir", filepath.Join(fresh, "sub"),
		"--url", srv.URL+"/tiny.safetensors", "--sha256", strings.Repeat("0", 64), "ViT-B/32")
	wantFailure(t, "SHA-256", e, code)
	if _, err := os.Stat(fresh); err == nil {
		t.Errorf("%s left after a failed download", fresh)
	}
	_, e, code = madclip(t, nil, "weights", "download", "RN50")
	wantFailure(t, "unknown model", e, code)
	// Weights converted from the very file asked for are kept, not fetched
	// again; converted from another, they are replaced as before.
	dest4 := t.TempDir()
	done := filepath.Join(dest4, "ViT-B-32.safetensors")
	sparseWeights(t, done, "ViT-B/32", map[string]string{"converted_by": "madclip", "source_sha256": sum})
	mu.Lock()
	before = len(asked)
	mu.Unlock()
	o, e, code := madclip(t, nil, "weights", "download", "--dir", dest4, "--url", srv.URL+"/tiny.safetensors", "--sha256", sum, "ViT-B/32")
	if code != 0 || !strings.Contains(o, "ViT-B/32 ready: "+done+" (already there, converted from the file of SHA-256 "+sum[:12]+"…)") {
		t.Errorf("a second download of converted weights: exit %d\n%s%s", code, o, e)
	}
	mu.Lock()
	if len(asked) != before {
		t.Errorf("%d requests made for weights already there", len(asked)-before)
	}
	mu.Unlock()
	sparseWeights(t, done, "ViT-B/32", map[string]string{"converted_by": "madclip", "source_sha256": strings.Repeat("0", 64)})
	_, e, code = madclip(t, nil, "weights", "download", "--quiet", "--dir", dest4, "--url", srv.URL+"/tiny.safetensors", "--sha256", sum, "ViT-B/32")
	wantFailure(t, "not the CLIP expected", e, code) // fetched, then refused as before
}

// sparseWeights writes at path a safetensors file with the shapes of the
// named CLIP release in fp16 and metadata, its data a hole (no disk used):
// what a look at the header (the architecture, the metadata) sees.
func sparseWeights(t *testing.T, path, release string, metadata map[string]string) {
	t.Helper()
	cfg, ok := clip.Preset(release)
	if !ok {
		t.Fatalf("no preset %s", release)
	}
	header := map[string]any{"__metadata__": metadata}
	var off int64
	for name, shape := range clip.ExpectedShapes(cfg) {
		n := int64(2)
		for _, d := range shape {
			n *= d
		}
		if shape == nil {
			shape = []int64{} // a scalar: [] in JSON, not null
		}
		header[name] = map[string]any{"dtype": "F16", "shape": shape, "data_offsets": []int64{off, off + n}}
		off += n
	}
	js, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	buf := binary.LittleEndian.AppendUint64(nil, uint64(len(js)))
	if err := os.WriteFile(path, append(buf, js...), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(8+len(js))+off); err != nil {
		t.Fatal(err)
	}
}

func writeTestPNG(t *testing.T, path string, w, h int, seed int) {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{byte(x*seed + y), byte(y * 3 * seed), byte((x ^ y) * 5), 255})
		}
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	png.Encode(f, img)
	f.Close()
}

// `madclip clip` end to end: JSON consistent with itself, and image
// embeddings equal to OpenAI's pipeline (PIL preprocessing, reference
// forward) in Python.
func TestClipCLI(t *testing.T) {
	dir := t.TempDir()
	w := tinyWeights(t, dir)
	a, b := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")
	writeTestPNG(t, a, 90, 70, 3)
	writeTestPNG(t, b, 40, 100, 7)
	texts := []string{"a brain MRI", "a chest X-ray", "a retinal OCT"}
	args := []string{"clip", "--weights", w, "--image", a, "--image", b, "--json", "--device", "cpu"}
	for _, tx := range texts {
		args = append(args, "--text", tx)
	}
	o, e, code := madclip(t, nil, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, e)
	}
	var res clipResult
	if err := json.Unmarshal([]byte(o), &res); err != nil {
		t.Fatalf("JSON: %v\n%s", err, o)
	}
	if len(res.ImageEmbeds) != 2 || len(res.TextEmbeds) != 3 || len(res.Probs) != 2 || len(res.Probs[0]) != 3 {
		t.Fatalf("shapes: %d %d %d", len(res.ImageEmbeds), len(res.TextEmbeds), len(res.Probs))
	}
	// What was scored, named.
	if len(res.Images) != 2 || string(res.Images[1]) != b || !slices.Equal(res.Texts, texts) || string(res.Weights) != w || len(res.WeightsDigest) != 64 {
		t.Errorf("inputs named %q %q %q %q", res.Images, res.Texts, res.Weights, res.WeightsDigest)
	}
	scale := math.Exp(2.659260036932778)
	for i, ie := range res.ImageEmbeds {
		if n := norm(ie); math.Abs(n-1) > 1e-4 {
			t.Errorf("image %d embedding norm %v", i, n)
		}
		sum := 0.0
		for j, te := range res.TextEmbeds {
			if math.Abs(scale*dot(ie, te)-float64(res.LogitsPerImage[i][j])) > 1e-2 {
				t.Errorf("logit %d,%d inconsistent", i, j)
			}
			sum += float64(res.Probs[i][j])
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("probabilities of image %d sum to %v", i, sum)
		}
	}
	// Plain output lists every text per image.
	o, _, code = madclip(t, nil, append(args[:len(args)-len(texts)*2-3], "--device", "cpu", "--text", texts[0], "--text", "two\nlines \x1b[31m")...)
	if code != 0 || !strings.Contains(o, a) || strings.Count(o, "%") != 4 || strings.Count(o, "\n") != 6 || !strings.Contains(o, `two\nlines \x1b[31m`) {
		t.Errorf("plain output (a line per image and per text, control characters escaped): %q", o)
	}
	// Against the Python pipeline.
	py := reftest.Python(t, "torch", "PIL")
	cmd := exec.Command(py, filepath.Join("testdata", "clip_pipeline.py"), w, "56", strconv.Itoa(clip.Tiny().VisionHeads), a, b)
	cmd.Stderr = os.Stderr
	ref, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	var want [][]float64
	json.Unmarshal(ref, &want)
	for i := range want {
		for j := range want[i] {
			if d := math.Abs(float64(res.ImageEmbeds[i][j]) - want[i][j]); d > 1e-4 {
				t.Fatalf("image %d dim %d: %v vs Python %v", i, j, res.ImageEmbeds[i][j], want[i][j])
			}
		}
	}
	// More images than one batch (16): each embedding as alone.
	many := []string{"clip", "--weights", w, "--json", "--device", "cpu", "--text", texts[0]}
	for i := range 17 {
		many = append(many, "--image", []string{a, b}[i%2])
	}
	o, e, code = madclip(t, nil, many...)
	var batched clipResult
	if err := json.Unmarshal([]byte(o), &batched); code != 0 || err != nil || len(batched.ImageEmbeds) != 17 {
		t.Fatalf("17 images: exit %d, %v: %s", code, err, e)
	}
	for i, emb := range batched.ImageEmbeds {
		for j, v := range emb {
			if d := math.Abs(float64(v - res.ImageEmbeds[i%2][j])); d > 1e-5 {
				t.Fatalf("image %d of 17, dim %d: %v, alone %v", i, j, v, res.ImageEmbeds[i%2][j])
			}
		}
	}
}

func TestClipCLIBadInputs(t *testing.T) {
	dir := t.TempDir()
	w := tinyWeights(t, dir)
	text := filepath.Join(dir, "notes.png")
	os.WriteFile(text, []byte("not an image"), 0o644)
	good := filepath.Join(dir, "good.png")
	writeTestPNG(t, good, 30, 30, 1)
	raw, _ := os.ReadFile(good)
	trunc := filepath.Join(dir, "trunc.png")
	os.WriteFile(trunc, raw[:len(raw)/2], 0o644)
	base := []string{"clip", "--weights", w, "--text", "x", "--device", "cpu"}
	for _, c := range []struct{ image, want string }{
		{text, text}, {trunc, trunc}, {filepath.Join(dir, "missing.png"), "missing.png"},
	} {
		_, e, code := madclip(t, nil, append(base, "--image", c.image)...)
		wantFailure(t, c.want, e, code)
	}
	notWeights := filepath.Join(dir, "w.safetensors")
	os.WriteFile(notWeights, []byte("garbage"), 0o644)
	_, e, code := madclip(t, nil, "clip", "--weights", notWeights, "--image", good, "--text", "x")
	wantFailure(t, notWeights, e, code)
	_, e, code = madclip(t, nil, "clip", "--image", good, "--text", "x")
	wantFailure(t, "no CLIP weights", e, code)
	_, e, code = madclip(t, nil, "clip", "--weights", w, "--text", "x", "--image", good, "--device", "tpu")
	wantFailure(t, "tpu", e, code)
}

func norm(v []float32) float64 { return math.Sqrt(dot(v, v)) }

func dot(a, b []float32) float64 {
	s := 0.0
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// synth then train with the tiny preset, as the README's demo does.
func TestSynthTrainCLI(t *testing.T) {
	root := t.TempDir()
	o, e, code := madclip(t, nil, "synth", "--out", root, "--valid", "4", "--test", "2", "--size", "32")
	if code != 0 || !strings.Contains(o, filepath.Join(root, "Brain_AD")) {
		t.Fatalf("synth: exit %d %s %s", code, o, e)
	}
	ck := filepath.Join(t.TempDir(), "tiny.safetensors")
	o, e, code = madclip(t, nil, "train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--epochs", "1",
		"--shots", "2", "--image-size", "56", "--out", ck, "--device", "cpu")
	if code != 0 || !strings.Contains(o, "wrote "+ck) {
		t.Fatalf("train: exit %d\n%s\n%s", code, o, e)
	}
	// Not a terminal: plain progress lines on stderr.
	if !strings.Contains(e, "epoch 1/1") || !strings.Contains(e, "caching backbone features") ||
		!strings.Contains(e, "from authors:Brain/my2-shot.txt") || !strings.Contains(o, "cos(t_n, t_ab)") {
		t.Errorf("progress output: %q\n%q", e, o)
	}
	if _, err := os.Stat(ck); err != nil {
		t.Fatal(err)
	}
	if m, err := checkpoint.ReadMeta(ck); err != nil || m.Training.Beta1 != 0.5 || m.Training.Beta2 != 0.999 {
		t.Errorf("default betas: %+v, %v; want the paper's 0.5, 0.999", m.Training, err)
	}
	// Adam's decay rates of zero are taken as given, not as "unset".
	_, e, code = madclip(t, nil, "train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--epochs", "1",
		"--shots", "2", "--image-size", "56", "--out", ck, "--quiet", "--device", "cpu", "--beta1", "0", "--beta2", "0")
	if code != 0 || e != "" {
		t.Errorf("--quiet: exit %d, stderr %q", code, e)
	}
	if m, err := checkpoint.ReadMeta(ck); err != nil || m.Training.Beta1 != 0 || m.Training.Beta2 != 0 {
		t.Errorf("--beta1 0 --beta2 0 trained with %+v, %v", m.Training, err)
	}
	// Files that are not images are said, not skipped silently, even with
	// --quiet or --json.
	for _, split := range []string{"valid", "test"} {
		os.WriteFile(filepath.Join(root, "Brain_AD", split, "good", "img", "notes.txt"), nil, 0o644)
	}
	_, e, code = madclip(t, nil, "train", "--data", root, "--dataset", "Brain", "--preset", "tiny", "--epochs", "1",
		"--shots", "2", "--image-size", "56", "--out", ck, "--quiet", "--device", "cpu")
	if want := "warning: " + filepath.Join(root, "Brain_AD", "valid") + ": skipping 1 file that is not PNG or JPEG in its image folders (e.g. "; code != 0 || !strings.Contains(e, want) {
		t.Errorf("train over a notes file: exit %d, stderr %q, want %q", code, e, want)
	}
	_, e, code = madclip(t, nil, "eval", "--checkpoint", ck, "--data", root, "--json", "--quiet", "--device", "cpu")
	if want := "madclip: " + filepath.Join(root, "Brain_AD", "test") + ": skipping 1 file that is not PNG or JPEG in its image folders (e.g. "; code != 0 || !strings.Contains(e, want) {
		t.Errorf("eval over a notes file: exit %d, stderr %q, want %q", code, e, want)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--data", filepath.Join(root, "nope"), "--dataset", "Brain"}, "nope"},
		{[]string{"--data", root, "--dataset", "Liver"}, "Liver_AD"},
		{[]string{"--data", root, "--dataset", "Brain", "--shots", "40"}, "40 shots"},
		{[]string{"--data", root, "--dataset", "Brain", "--epochs", "0"}, "--epochs 0: want 1 to"},
	} {
		args := append([]string{"train", "--preset", "tiny", "--out", filepath.Join(t.TempDir(), "x.safetensors")}, c.args...)
		_, e, code := madclip(t, nil, args...)
		wantFailure(t, c.want, e, code)
	}
	_, e, code = madclip(t, nil, "synth", "--out", "/proc/no/such/place")
	wantFailure(t, "/proc/no/such/place", e, code)
}

// Out-of-range numbers are refused up front, naming the flag; none panics.
func TestFlagRanges(t *testing.T) {
	dir := t.TempDir()
	train := []string{"train", "--data", dir, "--dataset", "Brain", "--preset", "tiny", "--out", filepath.Join(dir, "x.safetensors")}
	for _, c := range []struct {
		args []string
		want string
	}{
		{append(train, "--image-size", "-5"), "--image-size -5"},
		{append(train, "--image-size", "100000"), "--image-size 100000"},
		{append(train, "--image-size", "0"), "--image-size 0"},
		{append(train, "--shots", "0"), "--shots 0"},
		{append(train, "--layers", "2,9"), "train: --layers 9: the image tower of the tiny preset has 4 blocks (1..4)"},
		{[]string{"synth", "--out", dir, "--size", "100000"}, "--size 100000"},
		{[]string{"synth", "--out", dir, "--size", "0"}, "--size 0"},
		{[]string{"synth", "--out", dir, "--valid", "-1"}, "--valid -1"},
		{[]string{"eval", "--checkpoint", filepath.Join(dir, "none.safetensors"), "--data", dir, "--failures", "-1"}, "--failures -1"},
		{[]string{"eval", "--checkpoint", filepath.Join(dir, "none.safetensors"), "--data", dir, "--failures", "3"}, "--failures draws into the --report folder"},
		{[]string{"bench", "--data", dir, "--preset", "tiny", "--image-size", "0"}, "--image-size 0"},
	} {
		_, e, code := madclip(t, nil, c.args...)
		wantFailure(t, c.want, e, code)
	}
}

// weights list names each known model's file and where it was found with
// its size; weights path prints the largest one found, and without any
// says what it looked for (no mention of a --weights it does not have).
func TestWeightsListAndPath(t *testing.T) {
	store := t.TempDir()
	env := []string{"MADCLIP_WEIGHTS=" + store}
	_, e, code := madclip(t, env, "weights", "path")
	wantFailure(t, "none of ViT-L-14-336px.safetensors", e, code)
	if strings.Contains(e, "--weights") || strings.Contains(e, "--preset") {
		t.Errorf("weights path names a flag it lacks: %s", e)
	}
	// train without weights says how to get them, or to try the tiny preset.
	_, e, code = madclip(t, append(env, "XDG_CACHE_HOME="+t.TempDir()), "train", "--data", t.TempDir(), "--dataset", "Brain", "--out", filepath.Join(t.TempDir(), "o.safetensors"))
	wantFailure(t, "run 'madclip weights download ViT-L/14-336'; or try madclip without them: --preset tiny", e, code)
	// The variable set to a weights file rather than its folder is named.
	file := filepath.Join(t.TempDir(), "ViT-B-16.safetensors")
	os.WriteFile(file, []byte("x"), 0o644)
	_, e, code = madclip(t, []string{"MADCLIP_WEIGHTS=" + file}, "weights", "path")
	wantFailure(t, file+" is a file: $MADCLIP_WEIGHTS names the folder", e, code)
	envPipe := filepath.Join(t.TempDir(), "ViT-B-16.safetensors")
	if err := syscall.Mkfifo(envPipe, 0o644); err != nil {
		t.Fatal(err)
	}
	_, e, code = madclip(t, []string{"MADCLIP_WEIGHTS=" + envPipe}, "weights", "path")
	wantFailure(t, envPipe+" is not a folder: $MADCLIP_WEIGHTS names the folder", e, code)
	// A file of zeros under a release's name is no weights file: path says
	// so rather than hand it to a command.
	if err := os.WriteFile(filepath.Join(store, "ViT-B-16.safetensors"), make([]byte, 2_500_000), 0o644); err != nil {
		t.Fatal(err)
	}
	_, e, code = madclip(t, env, "weights", "path")
	wantFailure(t, "ViT-B-16.safetensors: header is not a JSON object", e, code)
	// ViT-B/16's tensors (their data a hole in a sparse file).
	b16, _ := clip.Preset("ViT-B/16")
	cliptest.WriteSparse(t, filepath.Join(store, "ViT-B-16.safetensors"), b16)
	o, e, code := madclip(t, env, "weights", "list")
	if code != 0 {
		t.Fatalf("list: exit %d %s", code, e)
	}
	want := regexp.MustCompile(`(?m)^ViT-B/16 +ViT-B-16\.safetensors +` + regexp.QuoteMeta(filepath.Join(store, "ViT-B-16.safetensors")) + ` \(\d+\.\d MiB\)$`)
	if !want.MatchString(o) || !regexp.MustCompile(`(?m)^ViT-L/14-336 +ViT-L-14-336px\.safetensors +not downloaded$`).MatchString(o) {
		t.Errorf("list:\n%s", o)
	}
	// The folder of the working directory reads as one, not as a word.
	if !strings.HasPrefix(o, "search path: "+store+", ./weights, ") {
		t.Errorf("list's search path:\n%s", o)
	}
	o, e, code = madclip(t, env, "weights", "path")
	if code != 0 || strings.TrimSpace(o) != filepath.Join(store, "ViT-B-16.safetensors") {
		t.Errorf("path: exit %d %q %s", code, o, e)
	}
	// A tiny CLIP under ViT-L/14-336's name is listed as refused.
	cliptest.WriteTiny(t, filepath.Join(store, "ViT-L-14-336px.safetensors"), 1, torch.Float32)
	o, e, code = madclip(t, env, "weights", "list")
	if code != 0 || !regexp.MustCompile(`(?m)^ViT-L/14-336 +ViT-L-14-336px\.safetensors +.*\(\d+\.\d MiB; not ViT-L/14-336's architecture: refused, rename it\)$`).MatchString(o) ||
		!want.MatchString(o) {
		t.Errorf("list with a tiny CLIP under ViT-L/14-336's name: exit %d\n%s%s", code, o, e)
	}
	// A named pipe there is not read (it could block), and said to be none.
	pipe := filepath.Join(store, "ViT-L-14.safetensors")
	if err := syscall.Mkfifo(pipe, 0o644); err != nil {
		t.Fatal(err)
	}
	o, e, code = madclip(t, env, "weights", "list")
	if code != 0 || !strings.Contains(o, pipe+" (not a regular file: not used)\n") {
		t.Errorf("list with a pipe under ViT-L/14's name: exit %d\n%s%s", code, o, e)
	}
	// A folder under a release's name is named, and a file that is no
	// CLIP is refused for what it is.
	folder := filepath.Join(store, "ViT-B-32.safetensors")
	os.Mkdir(folder, 0o755)
	os.WriteFile(filepath.Join(store, "ViT-B-16.safetensors"), []byte("garbage\n"), 0o644)
	o, e, code = madclip(t, env, "weights", "list")
	if code != 0 || !strings.Contains(o, folder+" (a folder: not used)\n") || !strings.Contains(o, "ViT-B-16.safetensors (8 bytes; not CLIP weights: refused, rename it)\n") {
		t.Errorf("list with a folder and garbage under release names: exit %d\n%s%s", code, o, e)
	}
}

// Every command named as printing no progress exists, and its --quiet says
// that it changes nothing.
func TestNoProgressCommands(t *testing.T) {
	app := newApp()
	for name := range noProgress {
		cmds, found := app.Commands, (*cli.Command)(nil)
		for _, part := range strings.Fields(name) {
			found = nil
			for _, c := range cmds {
				if c.Name == part {
					found, cmds = c, c.Subcommands
				}
			}
			if found == nil {
				break
			}
		}
		if found == nil {
			t.Errorf("no command %q", name)
			continue
		}
		ok := false
		for _, f := range found.Flags {
			if b, isBool := f.(*cli.BoolFlag); isBool && b.Name == "quiet" && strings.Contains(b.Usage, "prints no progress") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s: --quiet does not say it changes nothing", name)
		}
	}
}

// The version is printed by --version and, as go and docker print theirs,
// by the word version.
func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		o, e, code := madclip(t, nil, args...)
		if code != 0 || o != "madclip version "+version+"\n" || e != "" {
			t.Errorf("%s: exit %d, %q, %q", args, code, o, e)
		}
	}
	// A command like the others: listed, with help.
	for _, args := range [][]string{{"--help"}, {"help", "version"}, {"version", "--help"}} {
		if o, e, code := madclip(t, nil, args...); code != 0 || !strings.Contains(o, "version   print madclip's version") && !strings.Contains(o, "madclip version - print madclip's version") {
			t.Errorf("%s: exit %d, %q, %q", args, code, o, e)
		}
	}
}

// A weights file or checkpoint that is missing or of another kind is named
// with the flag that gave it, at once.
func TestFileErrorsNameTheirFlag(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nothere.safetensors")
	png := filepath.Join(dir, "scan.png")
	if err := os.WriteFile(png, []byte("\x89PNG\r\n\x1a\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"predict", png, "--checkpoint", missing}, "madclip: predict: --checkpoint " + missing + ": no such file or directory"},
		{[]string{"predict", png, "--checkpoint", png}, "madclip: predict: --checkpoint " + png + ": a PNG image, not a safetensors file"},
		{[]string{"eval", "--checkpoint", missing, "--data", dir}, "madclip: eval: --checkpoint " + missing + ": no such file or directory"},
		{[]string{"clip", "--weights", missing, "--image", png, "--text", "a"}, "madclip: clip: --weights " + missing + ": no such file or directory"},
		{[]string{"train", "--data", dir, "--dataset", "Brain", "--weights", png, "--out", filepath.Join(dir, "o.safetensors")}, "madclip: train: --weights " + png + ": a PNG image, not a safetensors file"},
	} {
		_, e, code := madclip(t, nil, c.args...)
		if code == 0 || strings.TrimSpace(e) != c.want {
			t.Errorf("%v: exit %d, stderr %q, want %q", c.args, code, e, c.want)
		}
	}
}
