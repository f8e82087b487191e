package weights

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"madclip/internal/cliptest"
	"madclip/internal/reftest"
	"madclip/internal/ziptest"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/torch"
	"madclip/torch/safetensors"
)

func python(t *testing.T) string { return reftest.Python(t, "torch") }

// writeTiny saves a tiny random CLIP in fp16 with OpenAI's names, as
// OpenAI's releases store it.
func writeTiny(t *testing.T, path string) { cliptest.WriteTiny(t, path, 11, torch.Float16) }

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr.String())
	}
}

func sameTensors(t *testing.T, what, gotPath, wantPath string) {
	t.Helper()
	got, err := safetensors.ReadFile(gotPath)
	if err != nil {
		t.Fatal(err)
	}
	defer got.Close()
	want, err := safetensors.ReadFile(wantPath)
	if err != nil {
		t.Fatal(err)
	}
	defer want.Close()
	if len(got.Tensors) != len(want.Tensors) {
		t.Fatalf("%s: %d tensors, want %d", what, len(got.Tensors), len(want.Tensors))
	}
	for _, w := range want.Tensors {
		g, ok := got.Get(w.Name)
		if !ok {
			t.Fatalf("%s: %s missing", what, w.Name)
		}
		if g.DType != w.DType || !bytes.Equal(g.Data, w.Data) || len(g.Shape) != len(w.Shape) {
			t.Fatalf("%s: %s differs (%s %v vs %s %v)", what, w.Name, g.DType, g.Shape, w.DType, w.Shape)
		}
	}
}

// Every input layout converts, in Go and in Python, to exactly the original
// tensors.
func TestConvertersAgree(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir()) // the digests are remembered there
	py := python(t)
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.safetensors")
	writeTiny(t, orig)
	run(t, py, filepath.Join("testdata", "make_variants.py"), orig, dir)
	vocab := filepath.Join(dir, "vocab-src.gz")
	os.WriteFile(vocab, bpe.DefaultVocab(), 0o644)
	for _, in := range []string{"openai.pt", "state_dict.pt", "model.safetensors", "pytorch_model.bin"} {
		t.Run(in, func(t *testing.T) {
			out := t.TempDir()
			goOut := filepath.Join(out, "go.safetensors")
			pyOut := filepath.Join(out, "py.safetensors")
			err := torch.Do(func() error {
				cfg, err := Convert(filepath.Join(dir, in), goOut, vocab)
				if err == nil && cfg != clip.Tiny() {
					t.Errorf("config %+v", cfg)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			run(t, py, filepath.Join("..", "scripts", "convert_clip.py"), filepath.Join(dir, in), pyOut)
			sameTensors(t, "go", goOut, orig)
			sameTensors(t, "python", pyOut, orig)
			// The two files differ (header order, metadata) but hold the
			// same tensors: one identity.
			dg, err1 := Digest(goOut)
			dp, err2 := Digest(pyOut)
			if err1 != nil || err2 != nil || dg != dp {
				t.Errorf("digests differ: go %s (%v), python %s (%v)", dg, err1, dp, err2)
			}
			if b, err := os.ReadFile(filepath.Join(out, VocabFile)); err != nil || !bytes.Equal(b, bpe.DefaultVocab()) {
				t.Errorf("vocab not copied: %v", err)
			}
			// Both converters give a new file the mode the umask allows.
			g, err1 := os.Stat(goOut)
			p, err2 := os.Stat(pyOut)
			if err1 != nil || err2 != nil || g.Mode().Perm() != p.Mode().Perm() || g.Mode().Perm() != 0o666&^umask() {
				t.Errorf("modes: go %v, python %v, umask %o", g.Mode(), p.Mode(), umask())
			}
		})
	}
}

func TestConvertRejects(t *testing.T) {
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.safetensors")
	writeTiny(t, orig)
	// Weights with a block's tensor removed, and a file that is not weights.
	partial := filepath.Join(dir, "partial.safetensors")
	err := torch.Do(func() error {
		return torch.Scoped(func(s *torch.Scope) error {
			w, _, err := torch.LoadSafetensors(orig, torch.CPU, torch.SameDType)
			if err != nil {
				return err
			}
			delete(w, "transformer.resblocks.1.ln_2.bias")
			return torch.SaveSafetensors(partial, w, nil)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	text := filepath.Join(dir, "notes.pt")
	os.WriteFile(text, []byte("just some text"), 0o644)
	// NaN where a damaged archive's short record loads garbage.
	nan := filepath.Join(dir, "nan.safetensors")
	cliptest.WriteTinyNaN(t, nan, 1, "token_embedding.weight")
	for in, want := range map[string]string{
		nan:                                 "tensor token_embedding.weight holds NaN or infinite values: the file is corrupt; nothing was written",
		partial:                             "missing transformer.resblocks.1.ln_2.bias",
		text:                                text,
		filepath.Join(dir, "none.pt"):       "none.pt",
		filepath.Join(dir, "x.safetensors"): "x.safetensors",
	} {
		out := filepath.Join(dir, "out.safetensors")
		err := torch.Do(func() error {
			_, err := Convert(in, out, "")
			return err
		})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: want an error containing %q, got %v", in, want, err)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: output written despite the error", in)
		}
	}
}

func TestLookupAndFind(t *testing.T) {
	for _, n := range []string{"ViT-L/14-336", "ViT-L/14@336px", "vit-l-14-336px", "ViT-B/32"} {
		if _, err := Lookup(n); err != nil {
			t.Errorf("Lookup(%q): %v", n, err)
		}
	}
	if _, err := Lookup("RN50"); err == nil || !strings.Contains(err.Error(), "ViT-L/14-336") {
		t.Errorf("unknown model: %v", err)
	}
	m, _ := Lookup("ViT-L/14-336")
	if m.File() != "ViT-L-14-336px.safetensors" || !strings.Contains(m.URL, m.SHA256) {
		t.Errorf("model entry %+v", m)
	}
	dir := t.TempDir()
	t.Setenv(EnvDir, dir)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	_, err := Find(VocabFile)
	if err == nil || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), filepath.Join(dir, "cache", "madclip")) {
		t.Errorf("Find should list where it looked: %v", err)
	}
	os.WriteFile(filepath.Join(dir, VocabFile), []byte("x"), 0o644)
	if p, err := Find(VocabFile); err != nil || p != filepath.Join(dir, VocabFile) {
		t.Errorf("Find: %q %v", p, err)
	}
	if DefaultDir() != dir {
		t.Errorf("DefaultDir %q", DefaultDir())
	}
}

// ConvertAs accepts the architecture it is told and refuses another one
// before writing anything; so does Convert to a release's file name.
func TestConvertAs(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "tiny.safetensors")
	cliptest.WriteTiny(t, in, 2, torch.Float32)
	out := filepath.Join(dir, "out.safetensors")
	err := torch.Do(func() error {
		if _, err := ConvertAs(in, out, "ViT-B/32", ""); err == nil || !strings.Contains(err.Error(), "not the CLIP expected") {
			t.Errorf("tiny as ViT-B/32: %v", err)
		}
		if _, err := os.Stat(out); err == nil {
			t.Error("written despite the wrong architecture")
		}
		cfg, err := ConvertAs(in, out, "tiny", strings.Repeat("Ab", 32))
		if err != nil || cfg != clip.Tiny() {
			t.Errorf("tiny as tiny: %v %v", cfg, err)
		}
		// The source's SHA-256 is recorded, in lowercase; a plain
		// conversion records none.
		if got := ConvertedFrom(out); got != strings.Repeat("ab", 32) {
			t.Errorf("converted from %q", got)
		}
		if got := ConvertedFrom(in); got != "" {
			t.Errorf("weights madclip did not convert: converted from %q", got)
		}
		// Convert to a release's file name holds that release or nothing:
		// the default weights are looked for by that name.
		named := filepath.Join(dir, "ViT-L-14-336px.safetensors")
		if _, err := Convert(in, named, ""); err == nil || !strings.Contains(err.Error(), "ViT-L-14-336px.safetensors names one of 336 px, patch 14, width 1024, 24 layers") {
			t.Errorf("tiny as ViT-L-14-336px.safetensors: %v", err)
		}
		if _, err := os.Stat(named); err == nil {
			t.Error("a tiny CLIP written under ViT-L/14-336's name")
		}
		if _, err := Convert(in, filepath.Join(dir, "mine.safetensors"), ""); err != nil {
			t.Errorf("tiny under its own name: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// umask reads the process's file mode creation mask.
func umask() os.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return os.FileMode(m)
}

// TestConvertKeepsOthersFiles: an OUT or a vocab destination that madclip
// did not write is refused before anything is written; the same vocab
// already in place is kept, and converting again replaces OUT.
func TestConvertKeepsOthersFiles(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.safetensors")
	writeTiny(t, orig)
	vocab := filepath.Join(dir, "vocab-src.gz")
	os.WriteFile(vocab, bpe.DefaultVocab(), 0o644)
	convert := func(out string) error {
		return torch.Do(func() error { _, err := Convert(orig, out, vocab); return err })
	}
	outDir := t.TempDir()
	out := filepath.Join(outDir, "w.safetensors")
	mine := filepath.Join(outDir, VocabFile)
	os.WriteFile(mine, []byte("my vocab"), 0o644)
	if err := convert(out); err == nil || !strings.Contains(err.Error(), mine) || !strings.Contains(err.Error(), "madclip did not write it") {
		t.Errorf("another vocab in place: %v", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("OUT written before the vocab's destination was refused")
	}
	os.Remove(mine)
	if err := convert(out); err != nil {
		t.Fatal(err)
	}
	if err := convert(out); err != nil { // OUT is madclip's, the vocab the same
		t.Fatalf("converting again: %v", err)
	}
	if b, _ := os.ReadFile(mine); !bytes.Equal(b, bpe.DefaultVocab()) {
		t.Error("vocab not in place")
	}
	// Safetensors another program wrote (no mark in the metadata).
	var other bytes.Buffer
	safetensors.Write(&other, []safetensors.Tensor{{Name: "x", DType: "F32", Shape: []int64{1}, Data: make([]byte, 4)}}, map[string]string{"format": "pt"})
	theirs := filepath.Join(outDir, "theirs.safetensors")
	os.WriteFile(theirs, other.Bytes(), 0o644)
	if err := convert(theirs); err == nil || !strings.Contains(err.Error(), theirs+": it exists and madclip did not write it") {
		t.Errorf("OUT = another program's safetensors: %v", err)
	}
	if after, _ := os.ReadFile(theirs); !bytes.Equal(other.Bytes(), after) {
		t.Error("another program's safetensors was changed")
	}
	// The Python converter follows the same rule.
	py := python(t)
	notes := filepath.Join(outDir, "notes.safetensors")
	os.WriteFile(notes, []byte("my notes"), 0o644)
	msg, err := exec.Command(py, filepath.Join("..", "scripts", "convert_clip.py"), orig, notes).CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "madclip did not write it") {
		t.Errorf("convert_clip.py over another file: %v %s", err, msg)
	}
	if b, _ := os.ReadFile(notes); string(b) != "my notes" {
		t.Error("convert_clip.py replaced another file")
	}
	run(t, py, filepath.Join("..", "scripts", "convert_clip.py"), orig, out) // madclip's: replaced
	// A checkpoint is madclip's but not weights: neither converter
	// replaces it.
	ck := filepath.Join(outDir, "ck.safetensors")
	if err := safetensors.WriteFile(ck, nil, map[string]string{"madclip": "{}"}); err != nil {
		t.Fatal(err)
	}
	ckBytes, _ := os.ReadFile(ck)
	if err := convert(ck); err == nil || !strings.Contains(err.Error(), "it holds a madclip checkpoint; refusing to replace it with CLIP weights") {
		t.Errorf("OUT = a checkpoint: %v", err)
	}
	msg, err = exec.Command(py, filepath.Join("..", "scripts", "convert_clip.py"), orig, ck).CombinedOutput()
	if err == nil || !strings.Contains(string(msg), "it holds a madclip checkpoint; refusing to replace it with CLIP weights") {
		t.Errorf("convert_clip.py over a checkpoint: %v %s", err, msg)
	}
	if b, _ := os.ReadFile(ck); !bytes.Equal(b, ckBytes) {
		t.Error("a checkpoint was replaced")
	}
}

// The Python converter, like Convert, writes nothing but a release under a
// release's file name.
func TestPythonConverterReleaseNames(t *testing.T) {
	py := python(t)
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.safetensors")
	writeTiny(t, orig)
	named := filepath.Join(dir, "ViT-B-16.safetensors")
	out, err := exec.Command(py, filepath.Join("..", "scripts", "convert_clip.py"), orig, named).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "ViT-B-16.safetensors names one of 224 px, patch 16, width 768, 12 layers") {
		t.Errorf("tiny as ViT-B-16: %v %s", err, out)
	}
	if _, err := os.Stat(named); err == nil {
		t.Error("a tiny CLIP written under ViT-B/16's name")
	}
	run(t, py, filepath.Join("..", "scripts", "convert_clip.py"), orig, filepath.Join(dir, "mine.safetensors"))
}

// The Python converter refuses, before writing, weights madclip's loader
// would refuse (and Convert refuses them too): a tensor missing, extra or
// misshaped, no patch grid, a tower without blocks, a tensor of integers,
// a vocabulary or a text context shorter than CLIP's.
func TestPythonConverterChecksWeights(t *testing.T) {
	py := python(t)
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.safetensors")
	writeTiny(t, orig)
	edits := map[string]struct {
		edit func(w map[string]*torch.Tensor)
		want string
	}{
		"int.safetensors": {func(w map[string]*torch.Tensor) {
			w["ln_final.weight"] = w["ln_final.weight"].ToDType(torch.Int32)
		}, "tensor ln_final.weight holds torch.int32, not floating-point numbers"},
		"vocab.safetensors": {func(w map[string]*torch.Tensor) {
			w["token_embedding.weight"] = w["token_embedding.weight"].Narrow(0, 0, 1000)
		}, "a vocabulary of 1000 tokens"},
		"missing.safetensors": {func(w map[string]*torch.Tensor) {
			delete(w, "transformer.resblocks.1.ln_2.bias")
		}, "missing transformer.resblocks.1.ln_2.bias"},
		"extra.safetensors": {func(w map[string]*torch.Tensor) {
			w["visual.transformer.resblocks.0.attn.extra"] = w["ln_final.weight"]
		}, "unexpected visual.transformer.resblocks.0.attn.extra"},
		"misshaped.safetensors": {func(w map[string]*torch.Tensor) {
			w["visual.proj"] = w["visual.proj"].Narrow(1, 0, 3)
		}, "visual.proj has shape [128, 3], want [128, 64]"},
		"grid.safetensors": {func(w map[string]*torch.Tensor) {
			w["visual.positional_embedding"] = w["visual.positional_embedding"].Narrow(0, 0, 3)
		}, "not a square grid plus one"},
		"nogrid.safetensors": {func(w map[string]*torch.Tensor) {
			w["visual.positional_embedding"] = w["visual.positional_embedding"].Narrow(0, 0, 1)
		}, "visual.positional_embedding has 1 rows"},
		"novision.safetensors": {func(w map[string]*torch.Tensor) {
			for n := range w {
				if strings.HasPrefix(n, "visual.transformer.") {
					delete(w, n)
				}
			}
		}, "the vision tower has no blocks"},
		"notext.safetensors": {func(w map[string]*torch.Tensor) {
			for n := range w {
				if strings.HasPrefix(n, "transformer.") {
					delete(w, n)
				}
			}
		}, "the text tower has no blocks"},
		"context.safetensors": {func(w map[string]*torch.Tensor) {
			w["positional_embedding"] = w["positional_embedding"].Narrow(0, 0, 20)
		}, "a text context of 20 tokens"},
	}
	for name, e := range edits {
		in := filepath.Join(dir, name)
		err := torch.Do(func() error {
			return torch.Scoped(func(s *torch.Scope) error {
				w, _, err := torch.LoadSafetensors(orig, torch.CPU, torch.SameDType)
				if err != nil {
					return err
				}
				e.edit(w)
				return torch.SaveSafetensors(in, w, nil)
			})
		})
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out-"+name)
		msg, err := exec.Command(py, filepath.Join("..", "scripts", "convert_clip.py"), in, out).CombinedOutput()
		if err == nil || !strings.Contains(string(msg), e.want) || !strings.Contains(string(msg), "nothing was written") {
			t.Errorf("%s: want a refusal containing %q, got %v %s", name, e.want, err, msg)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("%s: output written despite the refusal", name)
		}
		// madclip weights convert decides alike.
		err = torch.Do(func() error {
			_, err := Convert(in, out, "")
			return err
		})
		if err == nil {
			t.Errorf("%s: the Python script refuses it, Convert accepts it", name)
		}
	}
}

// An archive whose storage record was cut short, its checksum made anew,
// is refused by both converters before PyTorch reads past the record (it
// would load whatever memory follows), TorchScript and torch.save alike.
func TestConvertersRefuseShortRecord(t *testing.T) {
	py := python(t)
	dir := t.TempDir()
	orig := filepath.Join(dir, "orig.safetensors")
	writeTiny(t, orig)
	run(t, py, filepath.Join("testdata", "make_variants.py"), orig, dir)
	for _, in := range []string{"openai.pt", "state_dict.pt"} {
		short := filepath.Join(dir, "short-"+in)
		record := cutLargestRecord(t, filepath.Join(dir, in), short)
		want := "a damaged archive: storage record data/" + record + " holds "
		err := torch.Do(func() error {
			_, err := Convert(short, filepath.Join(dir, "go-"+in+".safetensors"), "")
			return err
		})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s, a record cut short: %v, want %q", in, err, want)
		}
		msg, err := exec.Command(py, filepath.Join("..", "scripts", "convert_clip.py"), short, filepath.Join(dir, "py-"+in+".safetensors")).CombinedOutput()
		if err == nil || !strings.Contains(string(msg), want) || !strings.Contains(string(msg), "nothing was written") {
			t.Errorf("convert_clip.py on %s with a record cut short: %v %s", in, err, msg)
		}
	}
}

// cutLargestRecord writes src's zip to dst with its largest storage
// record cut to half (a valid zip, checksums made anew) and returns that
// record's key.
func cutLargestRecord(t *testing.T, src, dst string) string {
	t.Helper()
	z, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	var largest *zip.File
	for _, f := range z.File {
		if strings.Contains(f.Name, "/data/") && (largest == nil || f.UncompressedSize64 > largest.UncompressedSize64) {
			largest = f
		}
	}
	z.Close()
	ziptest.Rewrite(t, src, dst, func(name string, data []byte) []byte {
		if name == largest.Name {
			return data[:len(data)/2]
		}
		return data
	})
	return largest.Name[strings.LastIndex(largest.Name, "/")+1:]
}
