package clip

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"madclip/internal/reftest"
	"madclip/internal/torchtest"
	"madclip/torch"
)

func python(t *testing.T) string { return reftest.Python(t, "torch", "numpy") }

func do(t *testing.T, fn func(s *torch.Scope) error) { torchtest.Do(t, fn) }

func values(t *testing.T, x *torch.Tensor) []float64 { return torchtest.Values(t, x) }

func near(t *testing.T, what string, got, want []float64, tol float64) {
	t.Helper()
	reftest.Near(t, what, got, want, tol)
}

// The towers against an independent PyTorch implementation with the same
// random weights: both activations, the causal mask on and off, the trained
// resolution and a resized positional grid with unused border pixels (as
// MadCLIP runs ViT-L/14-336 at 240 px).
func TestAgainstPyTorch(t *testing.T) {
	py := python(t)
	dir := t.TempDir()
	cases := []struct {
		name   string
		act    Activation
		px     int
		causal bool
	}{
		{"quick_gelu trained size", QuickGELU, 56, true},
		{"gelu resized grid", GELU, 44, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			do(t, func(s *torch.Scope) error {
				cfg := Tiny()
				m, err := New(cfg, Options{Activation: c.act, ImageSize: c.px}, 7)
				if err != nil {
					return err
				}
				defer m.Free()
				wpath := filepath.Join(dir, "w.safetensors")
				if err := torch.SaveSafetensors(wpath, m.Params().Map(), nil); err != nil {
					return err
				}
				g, _ := torch.NewGenerator(3)
				defer g.Free()
				images := torch.Rand(g, torch.Float32, torch.CPU, 2, 3, int64(c.px), int64(c.px))
				ids := torch.FromSlice([]int64{
					49406, 320, 1125, 539, 320, 2368, 49407, 0, 0, 0,
					49406, 3306, 267, 1002, 256, 49407, 0, 0, 0, 0,
					49406, 1929, 49407, 0, 0, 0, 0, 0, 0, 0,
				}, 3, 10)
				ids = torch.Cat(1, ids, torch.Zeros(torch.Int64, torch.CPU, 3, 67))
				ipath := filepath.Join(dir, "in.safetensors")
				if err := torch.SaveSafetensors(ipath, map[string]*torch.Tensor{"images": images, "ids": ids}, nil); err != nil {
					return err
				}
				taps := []int{2, 4}
				args, _ := json.Marshal(map[string]any{"act": c.act.String(), "causal": c.causal, "taps": taps,
					"vision_heads": cfg.VisionHeads, "text_heads": cfg.TextHeads})
				cmd := exec.Command(py, filepath.Join("testdata", "reference_clip.py"), wpath, ipath, string(args))
				cmd.Stderr = os.Stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("reference_clip.py: %v", err)
				}
				var want struct {
					Image, Text, Logits []float64
					Taps                [][]float64
				}
				if err := json.Unmarshal(out, &want); err != nil {
					return err
				}
				var img *torch.Tensor
				var tapped []*torch.Tensor
				torch.NoGrad(func() error {
					img, tapped = m.Visual.Forward(images, taps)
					return nil
				})
				txt := m.Text.ForwardEmbeddings(m.Text.Embed(ids), EOTIndex(ids), map[bool]AttnMask{false: FullAttention, true: CausalAttention}[c.causal])
				near(t, "image", values(t, img), want.Image, 2e-4)
				near(t, "text", values(t, txt), want.Text, 2e-4)
				near(t, "logits", values(t, m.Logits(img, txt)), want.Logits, 2e-3)
				for i := range taps {
					near(t, "tap", values(t, tapped[i]), want.Taps[i], 2e-4)
				}
				if g := int64(c.px / 14); tapped[0].Size(1) != g*g+1 {
					t.Errorf("tap has %d tokens, want %d", tapped[0].Size(1), g*g+1)
				}
				if c.causal {
					near(t, "EncodeText", values(t, m.EncodeText(ids)), want.Text, 2e-4)
				}
				return nil
			})
		})
	}
}

// Save, load, and get the same model back; the configuration is inferred
// from the shapes.
func TestLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tiny.safetensors")
	do(t, func(s *torch.Scope) error {
		m, err := New(Tiny(), Options{}, 1)
		if err != nil {
			return err
		}
		defer m.Free()
		if err := torch.SaveSafetensors(path, m.Params().Map(), nil); err != nil {
			return err
		}
		l, err := Load(path, Options{})
		if err != nil {
			return err
		}
		defer l.Free()
		if l.Config != Tiny() {
			t.Errorf("inferred config %+v, want %+v", l.Config, Tiny())
		}
		x := torch.Rand(nil, torch.Float32, torch.CPU, 1, 3, 56, 56)
		near(t, "reloaded", values(t, l.EncodeImage(x)), values(t, m.EncodeImage(x)), 0)
		// The same seed gives the same weights; another seed others.
		m2, _ := New(Tiny(), Options{}, 1)
		defer m2.Free()
		m3, _ := New(Tiny(), Options{}, 2)
		defer m3.Free()
		a, _ := m.Params().Get("visual.proj")
		b, _ := m2.Params().Get("visual.proj")
		c, _ := m3.Params().Get("visual.proj")
		near(t, "same seed", values(t, b), values(t, a), 0)
		if va, vc := values(t, a), values(t, c); va[0] == vc[0] && va[1] == vc[1] {
			t.Error("different seeds gave the same weights")
		}
		return nil
	})
}

// Loading is strict: missing, unexpected and misshaped tensors are named.
func TestStrictLoading(t *testing.T) {
	dir := t.TempDir()
	do(t, func(s *torch.Scope) error {
		m, err := New(Tiny(), Options{}, 1)
		if err != nil {
			return err
		}
		defer m.Free()
		base := torch.LiveTensors()
		write := func(name string, edit func(map[string]*torch.Tensor)) string {
			w := m.Params().Map()
			edit(w)
			p := filepath.Join(dir, name)
			if err := torch.SaveSafetensors(p, w, nil); err != nil {
				t.Fatal(err)
			}
			return p
		}
		for name, c := range map[string]struct {
			edit func(map[string]*torch.Tensor)
			want string
		}{
			"missing":    {func(w map[string]*torch.Tensor) { delete(w, "visual.ln_post.bias") }, "missing visual.ln_post.bias"},
			"unexpected": {func(w map[string]*torch.Tensor) { w["extra.weight"] = torch.Zeros(torch.Float32, torch.CPU, 2) }, "unexpected extra.weight"},
			"misshaped": {func(w map[string]*torch.Tensor) {
				w["transformer.resblocks.1.mlp.c_fc.bias"] = torch.Zeros(torch.Float32, torch.CPU, 5)
			}, "transformer.resblocks.1.mlp.c_fc.bias has shape [5]"},
			"not clip": {func(w map[string]*torch.Tensor) { delete(w, "visual.conv1.weight") }, "not CLIP weights"},
			"integer": {func(w map[string]*torch.Tensor) {
				w["visual.conv1.weight"] = w["visual.conv1.weight"].ToDType(torch.Int32)
			},
				"visual.conv1.weight is stored as"},
			"small vocab": {func(w map[string]*torch.Tensor) {
				w["token_embedding.weight"] = w["token_embedding.weight"].Narrow(0, 0, 10)
			},
				"a vocabulary of 10 tokens, but CLIP's tokenizer gives ids up to 49407"},
			"short context": {func(w map[string]*torch.Tensor) {
				w["positional_embedding"] = w["positional_embedding"].Narrow(0, 0, 5)
			},
				"a context of 5 tokens, but MadCLIP's prompts take 77"},
		} {
			p := write(name+".safetensors", c.edit)
			_, err := Load(p, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) {
				t.Errorf("%s: want an error naming %q and the file, got %v", name, c.want, err)
			}
		}
		s.Close() // the tensors the edits created
		if d := torch.LiveTensors() - base; d != 0 {
			t.Errorf("failed loads left %d tensors", d)
		}
		if _, err := Load(filepath.Join(dir, "none.safetensors"), Options{}); err == nil {
			t.Error("missing file loaded")
		}
		return nil
	})
}

func TestConfigFromShapesOpenAI(t *testing.T) {
	// The shapes of OpenAI's ViT-L/14-336px give the ViT-L/14-336 preset.
	c := presets["ViT-L/14-336"]
	shapes := map[string][]int64{
		"visual.conv1.weight":         {1024, 3, 14, 14},
		"visual.positional_embedding": {577, 1024},
		"text_projection":             {768, 768},
		"positional_embedding":        {77, 768},
		"token_embedding.weight":      {49408, 768},
		"ln_final.weight":             {768},
	}
	for i := range 24 {
		shapes["visual.transformer.resblocks."+itoa(i)+".attn.in_proj_weight"] = []int64{3072, 1024}
	}
	for i := range 12 {
		shapes["transformer.resblocks."+itoa(i)+".attn.in_proj_weight"] = []int64{2304, 768}
	}
	got, err := ConfigFromShapes(shapes)
	if err != nil || got != c {
		t.Errorf("got %+v, %v; want %+v", got, err, c)
	}
	shapes["visual.positional_embedding"] = []int64{578, 1024}
	if _, err := ConfigFromShapes(shapes); err == nil {
		t.Error("non-square grid accepted")
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// Wrong inputs give errors, not crashes.
func TestBadInputs(t *testing.T) {
	err := torch.Do(func() error {
		s := torch.NewScope()
		defer s.Close()
		m, err := New(Tiny(), Options{ImageSize: 44}, 1)
		if err != nil {
			return err
		}
		defer m.Free()
		for name, x := range map[string]*torch.Tensor{
			"wrong size":     torch.Zeros(torch.Float32, torch.CPU, 1, 3, 56, 56),
			"grey":           torch.Zeros(torch.Float32, torch.CPU, 1, 1, 44, 44),
			"no batch":       torch.Zeros(torch.Float32, torch.CPU, 3, 44, 44),
			"already failed": torch.Zeros(torch.Float32, torch.CPU, 2).Matmul(torch.Zeros(torch.Float32, torch.CPU, 3)),
		} {
			if err := m.EncodeImage(x).Err(); err == nil {
				t.Errorf("%s: accepted", name)
			}
		}
		if err := m.EncodeText(torch.Zeros(torch.Int64, torch.CPU, 2, 10)).Err(); err == nil || !strings.Contains(err.Error(), "10 tokens") {
			t.Errorf("short ids: %v", err)
		}
		if _, err := New(Tiny(), Options{ImageSize: 10}, 1); err == nil {
			t.Error("input smaller than a patch accepted")
		}
		return nil // the scope's recorded errors are the expected ones
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fp16 weights on disk load into any compute dtype.
func TestLoadDTypes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "half.safetensors")
	do(t, func(s *torch.Scope) error {
		m, err := New(Tiny(), Options{}, 4)
		if err != nil {
			return err
		}
		defer m.Free()
		half := map[string]*torch.Tensor{}
		for k, v := range m.Params().Map() {
			half[k] = v.ToDType(torch.Float16)
		}
		if err := torch.SaveSafetensors(path, half, nil); err != nil {
			return err
		}
		x := torch.Rand(nil, torch.Float32, torch.CPU, 2, 3, 56, 56)
		want := values(t, m.EncodeImage(x))
		for _, dt := range []torch.DType{torch.Float32, torch.BFloat16} {
			l, err := Load(path, Options{DType: dt})
			if err != nil {
				return err
			}
			if p, _ := l.Params().Get("visual.proj"); p.DType() != dt {
				t.Errorf("parameters in %v, want %v", p.DType(), dt)
			}
			got := values(t, l.EncodeImage(x.ToDType(dt)))
			if c := reftest.Cosine(got, want); c < 0.99 {
				t.Errorf("%v compute: cosine %.5f to the fp32 model", dt, c)
			}
			l.Free()
		}
		return nil
	})
}

// A config is named by the preset it is, else described.
func TestConfigName(t *testing.T) {
	for _, n := range PresetNames() {
		c, _ := Preset(n)
		if c.Name() != n {
			t.Errorf("preset %s named %q", n, c.Name())
		}
	}
	c, _ := Preset("ViT-L/14-336")
	c.ImageSize = 224 + 14
	if got, want := c.Name(), "a ViT of width 1024, 24 blocks, patch 14 at 238 px"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Releasing a tower frees exactly its weights; the other tower still
// gives the same embeddings, and the released one fails cleanly.
func TestReleaseTowers(t *testing.T) {
	do(t, func(s *torch.Scope) error {
		x := torch.Rand(nil, torch.Float32, torch.CPU, 1, 3, 56, 56)
		tokens := make([]int64, Tiny().ContextLength)
		tokens[0], tokens[1], tokens[2] = 49406, 320, 49407
		ids := torch.FromSlice(tokens, 1, int64(len(tokens)))
		img, err := New(Tiny(), Options{}, 1)
		if err != nil {
			return err
		}
		defer img.Free()
		wantImage, wantText := values(t, img.EncodeImage(x)), values(t, img.EncodeText(ids))
		all := img.Params().Len()
		img.ReleaseText()
		img.ReleaseText() // twice is harmless
		for _, name := range img.Params().Names() {
			if !strings.HasPrefix(name, "visual.") && name != "logit_scale" {
				t.Errorf("text tower released, %s kept", name)
			}
		}
		near(t, "image tower after the text's release", values(t, img.EncodeImage(x)), wantImage, 0)
		if err := torch.Scoped(func(*torch.Scope) error { return img.EncodeText(ids).Err() }); err == nil || !strings.Contains(err.Error(), "the text tower was released") {
			t.Errorf("text tower released, EncodeText: %v", err)
		}

		text, err := New(Tiny(), Options{}, 1)
		if err != nil {
			return err
		}
		defer text.Free()
		text.ReleaseVision()
		for _, name := range text.Params().Names() {
			if strings.HasPrefix(name, "visual.") {
				t.Errorf("image tower released, %s kept", name)
			}
		}
		if got := img.Params().Len() + text.Params().Len(); got != all+1 { // logit_scale in both
			t.Errorf("the towers' parameters after release: %d + %d, want %d in all", img.Params().Len(), text.Params().Len(), all+1)
		}
		near(t, "text tower after the image's release", values(t, text.EncodeText(ids)), wantText, 0)
		if err := torch.Scoped(func(*torch.Scope) error { return text.EncodeImage(x).Err() }); err == nil || !strings.Contains(err.Error(), "the image tower was released") {
			t.Errorf("image tower released, EncodeImage: %v", err)
		}
		return nil
	})
}
