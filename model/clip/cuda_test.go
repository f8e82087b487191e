package clip

import (
	"testing"

	"madclip/internal/reftest"
	"madclip/internal/torchtest"
	"madclip/torch"
)

// The tiny CLIP gives the same embeddings on a GPU (fp32) and close ones
// under bf16 autocast. Skipped without CUDA, unless the GPU script expects it.
func TestCUDAMatchesCPU(t *testing.T) {
	torchtest.CUDAOrSkip(t)
	do(t, func(s *torch.Scope) error {
		cpu, err := New(Tiny(), Options{ImageSize: 44, Activation: GELU}, 3)
		if err != nil {
			return err
		}
		defer cpu.Free()
		gpu, err := New(Tiny(), Options{ImageSize: 44, Activation: GELU, Device: torch.CUDA(0)}, 3)
		if err != nil {
			return err
		}
		defer gpu.Free()
		x := torch.Rand(nil, torch.Float32, torch.CPU, 4, 3, 44, 44)
		want := values(t, cpu.EncodeImage(x))
		// cuDNN may run the patch convolution in TF32: compare directions.
		if c := reftest.Cosine(values(t, gpu.EncodeImage(x.ToDevice(torch.CUDA(0)))), want); c < 0.9999 {
			t.Errorf("cuda fp32: cosine %.6f to the CPU result", c)
		}
		return torch.Autocast(torch.DeviceCUDA, torch.BFloat16, func() error {
			y := gpu.EncodeImage(x.ToDevice(torch.CUDA(0)))
			if c := reftest.Cosine(values(t, y), want); c < 0.99 {
				t.Errorf("cuda bf16: cosine %.6f to the CPU result", c)
			}
			return nil
		})
	})
}
