package torch

import (
	"path/filepath"
	"testing"

	"madclip/internal/reftest"
)

func python(t testing.TB) string { return reftest.Python(t, "torch") }

type refCase struct {
	op     string
	params map[string]any
	inputs map[string]input
	run    func(xs map[string]*Tensor) *Tensor
}

// TestAgainstPyTorch checks the ops whose exact definitions matter most to
// CLIP and MadCLIP (resampling, normalisation, attention) against PyTorch's
// Python API on the same inputs.
func TestAgainstPyTorch(t *testing.T) {
	py := python(t)
	cases := map[string]refCase{
		// CLIP's positional grid 24×24 → 17×17: bicubic with antialias.
		"bicubic_aa_down": {"interpolate", map[string]any{"size": []int{17, 17}, "mode": "bicubic", "antialias": true, "align_corners": false},
			map[string]input{"x": in(1, -1, 1, 1, 3, 24, 24)},
			func(x map[string]*Tensor) *Tensor {
				return Interpolate(x["x"], 17, 17, Resize{Mode: Bicubic, Antialias: true})
			}},
		"bicubic_up": {"interpolate", map[string]any{"size": []int{9, 7}, "mode": "bicubic", "antialias": false, "align_corners": false},
			map[string]input{"x": in(2, -1, 1, 2, 1, 4, 5)},
			func(x map[string]*Tensor) *Tensor { return Interpolate(x["x"], 9, 7, Resize{Mode: Bicubic}) }},
		// MadCLIP's score maps 17×17 → 240×240: bilinear, align_corners true.
		"bilinear_corners": {"interpolate", map[string]any{"size": []int{40, 40}, "mode": "bilinear", "antialias": false, "align_corners": true},
			map[string]input{"x": in(3, -1, 1, 1, 2, 17, 17)},
			func(x map[string]*Tensor) *Tensor {
				return Interpolate(x["x"], 40, 40, Resize{Mode: Bilinear, AlignCorners: true})
			}},
		"bilinear_down_aa": {"interpolate", map[string]any{"size": []int{5, 6}, "mode": "bilinear", "antialias": true, "align_corners": false},
			map[string]input{"x": in(4, -1, 1, 1, 1, 13, 11)},
			func(x map[string]*Tensor) *Tensor {
				return Interpolate(x["x"], 5, 6, Resize{Mode: Bilinear, Antialias: true})
			}},
		"grid_sample": {"grid_sample", map[string]any{"size": []int{2, 3, 8, 9}},
			map[string]input{"x": in(5, 0, 1, 2, 3, 8, 9), "theta": {[]float64{0.92, -0.38, 0.1, 0.38, 0.92, -0.1, 1, 0, 0.2, 0, 1, -0.2}, []int64{2, 2, 3}}},
			func(x map[string]*Tensor) *Tensor {
				return GridSample(x["x"], AffineGrid(x["theta"], [4]int64{2, 3, 8, 9}, Sampling{}), Sampling{Mode: Bilinear, Padding: PadReflection})
			}},
		"layer_norm": {"layer_norm", map[string]any{"norm_shape": []int{6}},
			map[string]input{"x": in(6, -3, 3, 2, 4, 6), "w": in(7, 0.5, 1.5, 6), "b": in(8, -1, 1, 6)},
			func(x map[string]*Tensor) *Tensor { return LayerNorm(x["x"], []int64{6}, x["w"], x["b"], 1e-5) }},
		"conv2d": {"conv2d", map[string]any{"stride": []int{2, 2}, "padding": []int{1, 1}},
			map[string]input{"x": in(9, -1, 1, 2, 3, 9, 9), "w": in(10, -1, 1, 4, 3, 3, 3), "b": in(11, -1, 1, 4)},
			func(x map[string]*Tensor) *Tensor {
				return Conv2d(x["x"], x["w"], x["b"], Conv2dOptions{Stride: [2]int64{2, 2}, Padding: [2]int64{1, 1}})
			}},
		"attention": {"attention", map[string]any{},
			map[string]input{"q": in(12, -1, 1, 2, 3, 5, 8), "k": in(13, -1, 1, 2, 3, 7, 8), "v": in(14, -1, 1, 2, 3, 7, 4)},
			func(x map[string]*Tensor) *Tensor { return Attention(x["q"], x["k"], x["v"], nil, false, 0) }},
		"attention_causal": {"attention", map[string]any{"causal": true},
			map[string]input{"q": in(15, -1, 1, 2, 6, 8), "k": in(16, -1, 1, 2, 6, 8), "v": in(17, -1, 1, 2, 6, 4)},
			func(x map[string]*Tensor) *Tensor { return Attention(x["q"], x["k"], x["v"], nil, true, 0) }},
		"gelu":        {"gelu", nil, map[string]input{"x": in(18, -4, 4, 50)}, func(x map[string]*Tensor) *Tensor { return x["x"].Gelu() }},
		"logsigmoid":  {"logsigmoid", nil, map[string]input{"x": in(19, -30, 30, 50)}, func(x map[string]*Tensor) *Tensor { return x["x"].LogSigmoid() }},
		"log_softmax": {"log_softmax", nil, map[string]input{"x": in(20, -9, 9, 4, 10)}, func(x map[string]*Tensor) *Tensor { return x["x"].LogSoftmax(-1) }},
		"normalize":   {"normalize", nil, map[string]input{"x": in(21, -2, 2, 3, 7)}, func(x map[string]*Tensor) *Tensor { return x["x"].Normalize(-1, 0) }},
	}
	js := map[string]map[string]any{}
	for name, c := range cases {
		m := map[string]any{"op": c.op}
		for k, v := range c.params {
			m[k] = v
		}
		for k, x := range c.inputs {
			m[k] = map[string]any{"v": x.v, "shape": x.shape}
		}
		js[name] = m
	}
	var want map[string][]float64
	reftest.RunJSON(t, py, filepath.Join("testdata", "reference.py"), js, &want)
	for name, c := range cases {
		run(t, func(s *Scope) error {
			xs := map[string]*Tensor{}
			for k, x := range c.inputs {
				xs[k] = FromSlice(x.v, x.shape...)
			}
			got := c.run(xs)
			if err := got.Err(); err != nil {
				t.Errorf("%s: %v", name, err)
				return nil
			}
			near(t, name, f64(t, got), want[name], 1e-10)
			return nil
		})
	}
}
