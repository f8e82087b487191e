package torch

import (
	"testing"
)

// cudaOrSkip returns GPU 0, skips when there is none, and fails when the GPU
// script said CUDA must be there (MADCLIP_EXPECT_CUDA=1).
func cudaOrSkip(t *testing.T) Device {
	t.Helper()
	if !CUDAAvailable() {
		if expectCUDA() {
			t.Fatal("MADCLIP_EXPECT_CUDA=1 but the bridge reports no CUDA device (was libtorch_cuda linked?)")
		}
		t.Skip("no CUDA device (CPU-only libtorch)")
	}
	return CUDA(0)
}

// The same ops on the GPU give the CPU's results.
func TestCUDAMatchesCPU(t *testing.T) {
	dev := cudaOrSkip(t)
	run(t, func(s *Scope) error {
		x := FromSlice(lcg(1, 2*3*16*16, -1, 1), 2, 3, 16, 16)
		w := FromSlice(lcg(2, 4*3*3*3, -1, 1), 4, 3, 3, 3)
		th := FromSlice([]float64{0.9, -0.3, 0.1, 0.3, 0.9, -0.1, 1, 0, 0.2, 0, 1.1, 0}, 2, 2, 3)
		ops := map[string]func(x, w, th *Tensor) *Tensor{
			"conv2d":  func(x, w, _ *Tensor) *Tensor { return Conv2d(x, w, nil, Conv2dOptions{Padding: [2]int64{1, 1}}) },
			"bicubic": func(x, _, _ *Tensor) *Tensor { return Interpolate(x, 11, 11, Resize{Mode: Bicubic, Antialias: true}) },
			"bilinear": func(x, _, _ *Tensor) *Tensor {
				return Interpolate(x, 40, 40, Resize{Mode: Bilinear, AlignCorners: true})
			},
			"grid": func(x, _, th *Tensor) *Tensor {
				return GridSample(x, AffineGrid(th, [4]int64{2, 3, 16, 16}, Sampling{}), Sampling{Mode: Bilinear, Padding: PadReflection})
			},
			"layernorm": func(x, _, _ *Tensor) *Tensor { return LayerNorm(x, []int64{16}, nil, nil, 1e-5) },
			"attention": func(x, _, _ *Tensor) *Tensor { return Attention(x, x, x, nil, true, 0) },
			"softmax":   func(x, _, _ *Tensor) *Tensor { return x.LogSoftmax(-1).Gelu().Sum() },
		}
		for name, f := range ops {
			cpu := f64(t, f(x, w, th))
			gpu := f64(t, f(x.ToDevice(dev), w.ToDevice(dev), th.ToDevice(dev)))
			near(t, name+" cpu vs cuda", gpu, cpu, 1e-9)
		}
		y := x.ToDevice(dev)
		if y.Device() != dev {
			t.Errorf("device %v", y.Device())
		}
		return Synchronize(dev)
	})
}

// bf16 autocast on the GPU gives bf16 matmuls.
func TestCUDAAutocast(t *testing.T) {
	dev := cudaOrSkip(t)
	run(t, func(s *Scope) error {
		a := Randn(nil, Float32, dev, 64, 64)
		return Autocast(DeviceCUDA, BFloat16, func() error {
			if d := a.Matmul(a).DType(); d != BFloat16 {
				t.Errorf("CUDA autocast matmul gives %v", d)
			}
			if d := a.Matmul(a).Softmax(-1).DType(); d != Float32 {
				t.Errorf("CUDA autocast softmax gives %v, want f32", d)
			}
			return nil
		})
	})
}

// Making a device current is a no-op for the CPU, works for a GPU that is
// there, and is an error, not a crash, on a bridge without CUDA.
func TestSetCurrentDevice(t *testing.T) {
	run(t, func(s *Scope) error {
		if err := SetCurrentDevice(CPU); err != nil {
			t.Errorf("the CPU: %v", err)
		}
		err := SetCurrentDevice(CUDA(0))
		if CUDAAvailable() && err != nil {
			t.Errorf("cuda:0 with %d GPUs: %v", CUDADeviceCount(), err)
		}
		if !CUDAAvailable() && err == nil {
			t.Error("cuda:0 made current on a bridge without CUDA")
		}
		return nil
	})
}
