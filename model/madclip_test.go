package model

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"madclip/internal/reftest"
	"madclip/internal/torchtest"
	"madclip/model/clip"
	"madclip/model/clip/bpe"
	"madclip/model/param"
	"madclip/torch"
)

func tokenizer(t testing.TB) *bpe.Tokenizer { return reftest.Tokenizer(t) }

func do(t *testing.T, fn func(s *torch.Scope) error) { torchtest.Do(t, fn) }

func values(t *testing.T, x *torch.Tensor) []float64 { return torchtest.Values(t, x) }

// tiny builds a tiny backbone at 44 px (a 3×3 grid) and MadCLIP over it.
func tiny(t *testing.T, o Options) (*clip.Model, *MadCLIP) {
	t.Helper()
	o.ImageSize = 44
	if o.Object == "" {
		o.Object = "Brain"
	}
	backbone, err := clip.New(clip.Tiny(), o.CLIPOptions(torch.CPU), 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := New(backbone, tokenizer(t), o, 2)
	if err != nil {
		backbone.Free()
		t.Fatal(err)
	}
	return backbone, m
}

// The token layout of every prompt at every position, on the real vocab.
func TestPromptLayout(t *testing.T) {
	tk := tokenizer(t)
	do(t, func(s *torch.Scope) error {
		backbone, m := tiny(t, Options{Object: "Chest X-ray film"})
		defer backbone.Free()
		defer m.Free()
		x := tk.Encode("X")[0]
		dot := tk.Encode(".")[0]
		if m.Prompts.PromptCount() != 21 {
			t.Fatalf("%d prompts per class, want 21", m.Prompts.PromptCount())
		}
		for c, phrases := range StatePhrases() {
			for i, tmpl := range phrases {
				phrase := tk.Encode(replace(tmpl, "Chest X-ray film"))
				var p64 []int64
				for _, id := range phrase {
					p64 = append(p64, int64(id))
				}
				ctx := []int64{-1, -1, -1, -1, -1, -1, -1, -1}
				tail := []int64{int64(dot), bpe.EOT}
				want := map[Position][]int64{
					End:    cat([]int64{bpe.SOT}, ctx, p64, tail),
					Front:  cat([]int64{bpe.SOT}, p64, ctx, tail),
					Middle: cat([]int64{bpe.SOT}, ctx[:4], p64, ctx[4:], tail),
				}
				for _, pos := range Positions() {
					got := m.Prompts.Layout(c, i, pos)
					if len(got) != 77 {
						t.Fatalf("layout length %d", len(got))
					}
					w := want[pos]
					if !slices.Equal(got[:len(w)], w) || slices.ContainsFunc(got[len(w):], func(v int64) bool { return v != 0 }) {
						t.Errorf("%s %q: got %v, want %v", pos, replace(tmpl, "Chest X-ray film"), got[:len(w)+1], w)
					}
				}
				// The fixed ids are those of "X×8 {phrase}.".
				if ids := m.Prompts.prompts[c][i].ids; ids[1] != int64(x) || ids[8] != int64(x) {
					t.Errorf("fixed ids %v", ids[:10])
				}
			}
		}
		// Assemble puts the token embeddings and the context vectors where
		// Layout says, and the EOT position is the same in all layouts.
		emb, eot := m.Prompts.Assemble()
		if sh := emb.Shape(); !slices.Equal(sh, []int64{42, 77, 128}) {
			t.Fatalf("assembled %v", sh)
		}
		tokEmb := backbone.Text.TokenEmbedding
		for _, probe := range []struct {
			c, i int
			pos  Position
		}{{0, 1, End}, {1, 3, Front}, {1, 6, Middle}} {
			row := (probe.c*7+probe.i)*3 + int(probe.pos)
			layout := m.Prompts.Layout(probe.c, probe.i, probe.pos)
			ctxSeen := 0
			for j, id := range layout[:20] {
				got := values(t, emb.Select(0, int64(row)).Select(0, int64(j)))
				var want []float64
				if id < 0 {
					want = values(t, m.Prompts.Ctx[probe.c].Select(0, int64(probe.i)).Select(0, int64(probe.pos)).Select(0, int64(ctxSeen)))
					ctxSeen++
				} else {
					want = values(t, tokEmb.Select(0, id))
				}
				reftest.Near(t, fmt.Sprintf("row %d token %d", row, j), got, want, 0)
			}
			e := values(t, eot.Narrow(0, int64(row), 1))[0]
			if int(e) != slices.Index(layout, bpe.EOT) {
				t.Errorf("EOT at %v, layout has it at %d", e, slices.Index(layout, bpe.EOT))
			}
		}
		return nil
	})
}

// The learned context vectors start as the authors' do: N(0, 0.02²), one
// set per phrase and position, separately drawn for each class.
func TestContextInit(t *testing.T) {
	do(t, func(s *torch.Scope) error {
		backbone, m := tiny(t, Options{})
		defer backbone.Free()
		defer m.Free()
		var first []float64
		for c := range 2 {
			v := values(t, m.Prompts.Ctx[c])
			if len(v) != 7*3*8*128 {
				t.Fatalf("class %d: %d context values, want 7·3·8·128", c, len(v))
			}
			mean, sq := 0.0, 0.0
			for _, x := range v {
				mean += x
				sq += x * x
			}
			mean /= float64(len(v))
			std := math.Sqrt(sq/float64(len(v)) - mean*mean)
			if math.Abs(mean) > 1e-3 || math.Abs(std-0.02) > 0.001 {
				t.Errorf("class %d: context mean %.5f, std %.5f; want N(0, 0.02)", c, mean, std)
			}
			if c == 0 {
				first = v
			} else if slices.Equal(first, v) {
				t.Error("both classes start from the same context vectors")
			}
		}
		return nil
	})
}

func replace(tmpl, obj string) string {
	out := ""
	for i := 0; i < len(tmpl); i++ {
		if i+1 < len(tmpl) && tmpl[i:i+2] == "{}" {
			out += obj
			i++
		} else {
			out += string(tmpl[i])
		}
	}
	return out
}

// Adapters, prompts, text features, scores, the anomaly map and the
// detection score against an independent PyTorch computation.
func TestAgainstPyTorch(t *testing.T) {
	py := reftest.Python(t, "torch", "numpy")
	dir := t.TempDir()
	do(t, func(s *torch.Scope) error {
		backbone, m := tiny(t, Options{})
		defer backbone.Free()
		defer m.Free()
		tensors := map[string]*torch.Tensor{}
		for k, v := range backbone.Params().Map() {
			tensors["clip."+k] = v
		}
		for k, v := range m.Params().Map() {
			tensors["madclip."+k] = v
		}
		for c, cls := range []string{"normal", "abnormal"} {
			for i, p := range m.Prompts.prompts[c] {
				tensors[fmt.Sprintf("ids.%s.%d", cls, i)] = torch.FromSlice(p.ids)
				tensors[fmt.Sprintf("plen.%s.%d", cls, i)] = torch.FromSlice([]int64{int64(p.phraseLen)})
			}
		}
		images := torch.Rand(nil, torch.Float32, torch.CPU, 2, 3, 44, 44)
		taps := m.Features(images)
		for i, tp := range taps {
			tensors[fmt.Sprintf("tap.%d", i)] = tp
		}
		path := filepath.Join(dir, "t.safetensors")
		if err := torch.SaveSafetensors(path, tensors, nil); err != nil {
			return err
		}
		cfg, _ := json.Marshal(map[string]any{"vision_heads": 2, "text_heads": 2, "layers": len(taps), "size": 20})
		cmd := exec.Command(py, filepath.Join("testdata", "reference_madclip.py"), path, string(cfg))
		cmd.Stderr = os.Stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("reference_madclip.py: %v", err)
		}
		var want struct {
			Text       []float64
			Det, Seg   [][]float64
			Map, Score []float64
		}
		if err := json.Unmarshal(out, &want); err != nil {
			return err
		}
		text := m.TextFeatures()
		reftest.Near(t, "text features", values(t, text), want.Text, 1e-4)
		det, seg := m.Scores(taps, text)
		for i := range det {
			reftest.Near(t, "det scores", values(t, det[i]), want.Det[i], 1e-4)
			reftest.Near(t, "seg scores", values(t, seg[i]), want.Seg[i], 1e-4)
		}
		reftest.Near(t, "anomaly map", values(t, m.AnomalyMap(seg, 20)), want.Map, 1e-4)
		reftest.Near(t, "det score", values(t, DetScore(det)), want.Score, 1e-4)
		// Prediction's map: the segmentation head's for a model trained
		// with masks, the detection head's otherwise, per layer.
		for _, byMap := range []bool{true, false} {
			_, _, amap := m.ImageScores(det, seg, 21, byMap)
			want := m.DetMap(det, 21)
			if byMap {
				want = m.AnomalyMap(seg, 21)
			}
			reftest.Near(t, fmt.Sprintf("map (by map %v)", byMap), values(t, amap), values(t, want.DivScalar(float64(len(det)))), 1e-6)
		}
		// The detection map at the patch centres (pixels 0, 10, 20 of 21 on
		// a 3×3 grid, align_corners true) is the reference's sigmoid(S_ab −
		// S_n) of that patch, summed over the layers.
		dm := values(t, m.DetMap(det, 21))
		for b := range 2 {
			for r := range 3 {
				for c := range 3 {
					var want64 float64
					for l := range want.Det {
						i := (b*9 + r*3 + c) * 2
						want64 += 1 / (1 + math.Exp(-(want.Det[l][i+1] - want.Det[l][i])))
					}
					if got := dm[b*21*21+10*r*21+10*c]; math.Abs(got-want64) > 1e-4 {
						t.Errorf("detection map, image %d patch (%d, %d): %v, want %v", b, r, c, got, want64)
					}
				}
			}
		}
		if sh := taps[0].Shape(); !slices.Equal(sh, []int64{2, 10, 128}) {
			t.Errorf("tap shape %v", sh)
		}
		return nil
	})
}

// The hand-crafted ablation is the authors' text_mood=fix: 7 phrases × 35
// templates per class as plain CLIP text (causal mask), against an
// independent PyTorch computation; the sentences are the templates filled
// with the phrases; the features are fixed (no trainable context).
func TestHandcraftedPromptsAgainstPyTorch(t *testing.T) {
	py := reftest.Python(t, "torch")
	for _, act := range []string{"gelu", "quick_gelu"} {
		do(t, func(s *torch.Scope) error {
			backbone, m := tiny(t, Options{Handcrafted: true, QuickGELU: act == "quick_gelu"})
			defer backbone.Free()
			defer m.Free()
			if n := m.Prompts.PromptCount(); n != 7*35 {
				t.Fatalf("%d hand-crafted prompts per class, want 245", n)
			}
			tk := tokenizer(t)
			first, last := m.Prompts.prompts[0][0].ids, m.Prompts.prompts[1][244].ids
			want0 := tk.EncodeWithSpecials("a bad photo of a Brain.")
			want1 := tk.EncodeWithSpecials("this is one abnormal Brain in the scene.")
			for i, id := range want0 {
				if first[i] != int64(id) {
					t.Fatalf("first normal sentence ids %v, want %v", first[:len(want0)], want0)
				}
			}
			for i, id := range want1 {
				if last[i] != int64(id) {
					t.Fatalf("last abnormal sentence ids %v, want %v", last[:len(want1)], want1)
				}
			}
			tensors := map[string]*torch.Tensor{}
			for k, v := range backbone.Params().Map() {
				tensors["clip."+k] = v
			}
			var ids []int64
			for c := range 2 {
				for _, p := range m.Prompts.prompts[c] {
					ids = append(ids, p.ids...)
				}
			}
			tensors["ids"] = torch.FromSlice(ids, int64(len(ids)/77), 77)
			path := filepath.Join(t.TempDir(), "t.safetensors")
			if err := torch.SaveSafetensors(path, tensors, nil); err != nil {
				return err
			}
			cfg, _ := json.Marshal(map[string]any{"vision_heads": 2, "text_heads": 2, "act": act})
			cmd := exec.Command(py, filepath.Join("testdata", "reference_handcrafted.py"), path, string(cfg))
			cmd.Stderr = os.Stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("reference_handcrafted.py: %v", err)
			}
			var want struct{ Text []float64 }
			if err := json.Unmarshal(out, &want); err != nil {
				return err
			}
			reftest.Near(t, act+" hand-crafted text features", values(t, m.TextFeatures()), want.Text, 1e-5)
			return nil
		})
	}
}

// Gradients reach the adapters and every context vector, and nothing else.
func TestGradientsFlowToTrainables(t *testing.T) {
	do(t, func(s *torch.Scope) error {
		backbone, m := tiny(t, Options{})
		defer backbone.Free()
		defer m.Free()
		for _, p := range m.Params().Tensors() {
			p.SetRequiresGrad(true)
		}
		taps := m.Features(torch.Rand(nil, torch.Float32, torch.CPU, 2, 3, 44, 44))
		det, seg := m.Scores(taps, m.TextFeatures())
		loss := DetScore(det).Sum().Add(m.AnomalyMap(seg, 8).Mean())
		if err := loss.Backward(); err != nil {
			return err
		}
		for _, name := range m.Params().Names() {
			p, _ := m.Params().Get(name)
			if p.Grad() == nil {
				t.Errorf("%s has no gradient", name)
			}
		}
		for _, name := range []string{"visual.conv1.weight", "token_embedding.weight"} {
			p, _ := backbone.Params().Get(name)
			if p.Grad() != nil || p.RequiresGrad() {
				t.Errorf("frozen %s got a gradient", name)
			}
		}
		return nil
	})
}

// The ablations change the structure as the paper describes.
func TestAblations(t *testing.T) {
	do(t, func(s *torch.Scope) error {
		for _, c := range []struct {
			o          Options
			params     int
			sameBranch bool
		}{
			{Options{}, 2*4*3 + 2, false},
			{Options{SharedAdapters: true}, 4*3 + 2, true},
			{Options{CommonHead: true}, 2*4*2 + 2, false},
			{Options{Handcrafted: true}, 2 * 4 * 3, false},
		} {
			backbone, m := tiny(t, c.o)
			if n := m.Params().Len(); n != c.params {
				t.Errorf("%+v: %d trainable tensors, want %d", c.o, n, c.params)
			}
			if (m.Adapters[0][0] == m.Adapters[1][0]) != c.sameBranch {
				t.Errorf("%+v: shared branches %v", c.o, !c.sameBranch)
			}
			text := m.TextFeatures()
			det, seg := m.Scores(m.Features(torch.Rand(nil, torch.Float32, torch.CPU, 1, 3, 44, 44)), text)
			if err := m.AnomalyMap(seg, 10).Err(); err != nil {
				t.Errorf("%+v: %v", c.o, err)
			}
			if err := DetScore(det).Err(); err != nil {
				t.Errorf("%+v: %v", c.o, err)
			}
			// One head: the segmentation scores are the detection scores.
			if c.o.CommonHead {
				reftest.Near(t, "common head", values(t, seg[0]), values(t, det[0]), 0)
			}
			// Hand-crafted prompts: nothing of the prompts is trainable, and
			// the text features are the same at every call.
			if c.o.Handcrafted {
				for _, n := range m.Params().Names() {
					if strings.HasPrefix(n, "prompts") {
						t.Errorf("hand-crafted model trains %s", n)
					}
				}
				reftest.Near(t, "fixed text", values(t, m.TextFeatures()), values(t, text), 0)
			}
			m.Free()
			backbone.Free()
		}
		// The generic object word: every prompt names "medical image"
		// where the dataset's word was (the authors' REAL_NAME['all']).
		tk := tokenizer(t)
		for _, c := range []struct {
			o    Options
			text string
		}{{Options{}, "Brain."}, {Options{GenericObject: true}, "medical image."}, {Options{Object: "retinal OCT"}, "retinal OCT."}} {
			backbone, m := tiny(t, c.o)
			want := tk.EncodeWithSpecials(c.text) // SOT, the words, ".", EOT
			got := m.Prompts.Layout(0, 0, End)    // SOT, 8 context slots, the phrase "{}", ".", EOT
			for i, id := range want[1:] {
				if got[1+NumCtx+i] != int64(id) {
					t.Errorf("%+v: the first normal prompt is %v, want the words of %q (%v) after the context", c.o, got[:1+NumCtx+len(want)], c.text, want)
					break
				}
			}
			m.Free()
			backbone.Free()
		}
		// The words per dataset are the authors' (REAL_NAME in their
		// Prompt/promptChooser.py).
		authors := map[string]string{"Brain": "Brain", "Liver": "Liver", "Retina_RESC": "retinal OCT", "Chest": "Chest X-ray film",
			"Retina_OCT2017": "retinal OCT", "Histopathology": "histopathological image"}
		if !maps.Equal(ObjectWords(), authors) || GenericObjectWord != "medical image" {
			t.Errorf("object words %v and %q, the authors' %v and \"medical image\"", ObjectWords(), GenericObjectWord, authors)
		}
		// Without subtraction the scores are plain similarities in [-1, 1].
		backbone, m := tiny(t, Options{NoSubtraction: true})
		defer backbone.Free()
		defer m.Free()
		det, _ := m.Scores(m.Features(torch.Rand(nil, torch.Float32, torch.CPU, 1, 3, 44, 44)), m.TextFeatures())
		for _, v := range values(t, det[0]) {
			if v < -1-1e-5 || v > 1+1e-5 {
				t.Fatalf("score %v outside [-1, 1]", v)
			}
		}
		if _, err := New(backbone, tokenizer(t), Options{Object: "Brain", Layers: []int{9}, ImageSize: 44}, 1); err == nil {
			t.Error("a tap beyond the last block accepted")
		}
		return nil
	})
}

// The default taps: every quarter of the blocks, each block at most once,
// so that a backbone of fewer than four blocks builds without --layers.
func TestDefaultLayers(t *testing.T) {
	for blocks, want := range map[int][]int{24: {6, 12, 18, 24}, 12: {3, 6, 9, 12}, 4: {1, 2, 3, 4}, 6: {1, 3, 4, 6}, 3: {1, 2, 3}, 2: {1, 2}, 1: {1}} {
		got := DefaultLayers(blocks)
		if !slices.Equal(got, want) {
			t.Errorf("%d blocks: %v, want %v", blocks, got, want)
		}
		if err := (Options{Layers: got}).CheckLayers(blocks); err != nil {
			t.Errorf("%d blocks: %v", blocks, err)
		}
	}
	// A two-block backbone: MadCLIP on its two blocks, two adapters per branch.
	cfg := clip.Tiny()
	cfg.VisionLayers = 2
	do(t, func(s *torch.Scope) error {
		backbone, err := clip.New(cfg, Options{ImageSize: 44}.CLIPOptions(torch.CPU), 1)
		if err != nil {
			return err
		}
		defer backbone.Free()
		m, err := New(backbone, tokenizer(t), Options{ImageSize: 44, Object: "Brain"}, 2)
		if err != nil {
			return err
		}
		defer m.Free()
		if !slices.Equal(m.Opts.Layers, []int{1, 2}) || len(m.Adapters[Normal]) != 2 {
			t.Errorf("layers %v, %d adapters", m.Opts.Layers, len(m.Adapters[Normal]))
		}
		return nil
	})
}

// --mean-std (the ablation that normalises as CLIP's preprocessing does)
// taps what the default taps on images already normalised by hand; the
// default leaves images in [0, 1], as the authors' code does.
func TestFeaturesMeanStd(t *testing.T) {
	do(t, func(s *torch.Scope) error {
		backbone, plain := tiny(t, Options{})
		defer backbone.Free()
		defer plain.Free()
		withMS, err := New(backbone, tokenizer(t), Options{Object: "Brain", ImageSize: 44, MeanStd: true}, 2)
		if err != nil {
			return err
		}
		defer withMS.Free()
		g, _ := torch.NewGenerator(3)
		defer g.Free()
		x := torch.Rand(g, torch.Float32, torch.CPU, 2, 3, 44, 44)
		v := values(t, x)
		mean := []float64{0.48145466, 0.4578275, 0.40821073}
		std := []float64{0.26862954, 0.26130258, 0.27577711}
		norm := make([]float32, len(v))
		for i := range v {
			ch := (i / (44 * 44)) % 3
			norm[i] = float32((v[i] - mean[ch]) / std[ch])
		}
		byHand := torch.FromSlice(norm, 2, 3, 44, 44)
		a, b, c := withMS.Features(x), plain.Features(byHand), plain.Features(x)
		for i := range a {
			reftest.Near(t, fmt.Sprintf("tap %d", i), values(t, a[i]), values(t, b[i]), 1e-4)
		}
		if d := math.Abs(values(t, a[3])[0] - values(t, c[3])[0]); d < 1e-6 {
			t.Error("--mean-std changed nothing")
		}
		return nil
	})
}

// CheckObject passes every benchmark word and the generic one, and refuses
// a word whose prompts overflow the context (at the first token too many),
// an empty one and one with a line break.
func TestCheckObject(t *testing.T) {
	tk := tokenizer(t)
	for _, w := range append(slices.Collect(maps.Values(ObjectWords())), GenericObjectWord) {
		if err := CheckObject(tk, w); err != nil {
			t.Errorf("%q: %v", w, err)
		}
	}
	// "a b" adds two tokens: find where the prompts stop fitting.
	fits := ""
	for n := 1; ; n++ {
		w := strings.TrimSpace(strings.Repeat("a b ", n))
		if err := CheckObject(tk, w); err != nil {
			if !strings.Contains(err.Error(), "more than CLIP's 77-token context") || fits == "" {
				t.Fatalf("%d words: %v", 2*n, err)
			}
			break
		}
		fits = w
	}
	if _, err := newPromptLearner(param.NewShapeRecorder(), tk, fits, 8, promptContext, true); err != nil {
		t.Errorf("the longest word CheckObject passes does not build hand-crafted prompts: %v", err)
	}
	for _, w := range []string{"", "  ", "knee\nMRI", strings.Repeat("x", 2000)} {
		if err := CheckObject(tk, w); err == nil {
			t.Errorf("%.20q accepted", w)
		}
	}
}

// Under bf16 the scores are taken as O·(t_n − t_ab) in float32: equal to
// the paper's difference of products in float32, and far closer to the
// exact scores than that difference of bf16 products, which cancels when
// t_n and t_ab are close. The scores come out in float32.
func TestRoundedPairScores(t *testing.T) {
	do(t, func(s *torch.Scope) error {
		for _, o := range []Options{{}, {NoSubtraction: true}} {
			backbone, m := tiny(t, o)
			defer backbone.Free()
			defer m.Free()
			g, err := torch.NewGenerator(5)
			if err != nil {
				return err
			}
			defer g.Free()
			e := m.TextFeatures().Size(1)
			tn := torch.Randn(g, torch.Float32, torch.CPU, e).Normalize(-1, 0)
			tab := tn.Add(torch.Randn(g, torch.Float32, torch.CPU, e).MulScalar(0.01)).Normalize(-1, 0)
			text := torch.Stack(0, tn, tab)
			on := torch.Randn(g, torch.Float32, torch.CPU, 2, 7, e)
			oab := torch.Randn(g, torch.Float32, torch.CPU, 2, 7, e)
			exact := m.pairScores(on, oab, text) // the paper's form, float32
			worst := func(x *torch.Tensor) float64 {
				v, err := x.ToDType(torch.Float32).Sub(exact).Abs().Max().Item()
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			if d := worst(m.roundedPairScores(on, oab, text)); d > 1e-5 {
				t.Errorf("%+v: the two forms differ by %g in float32", o, d)
			}
			bf := func(x *torch.Tensor) *torch.Tensor { return x.ToDType(torch.BFloat16) }
			rounded := m.roundedPairScores(bf(on), bf(oab), text)
			if dt := rounded.DType(); dt != torch.Float32 {
				t.Errorf("%+v: bf16 tokens give %v scores, want float32", o, dt)
			}
			scale, err := exact.Abs().Max().Item()
			if err != nil {
				return err
			}
			if d := worst(rounded); d > 0.02*scale {
				t.Errorf("%+v: bf16 scores off by %g against scores up to %g", o, d, scale)
			}
			if o.NoSubtraction {
				continue // no difference to cancel
			}
			tb := bf(text).Transpose(0, 1)
			pn, pab := bf(on).Matmul(tb), bf(oab).Matmul(tb) // the paper's form in bf16
			naive := torch.Stack(-1, pn.Select(-1, 0).Sub(pn.Select(-1, 1)), pab.Select(-1, 1).Sub(pab.Select(-1, 0)))
			dr, dn := worst(rounded), worst(naive)
			t.Logf("bf16 error %g (text-side difference) against %g (difference of products), scores up to %g", dr, dn, scale)
			if dn < 3*dr {
				t.Errorf("bf16: the text-side difference is off by %g, the difference of products by %g: no gain", dr, dn)
			}
		}
		return nil
	})
}
