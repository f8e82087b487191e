// Package torchtest holds the tensor helpers tests above the torch package
// share.
package torchtest

import (
	"os"
	"testing"

	"madclip/torch"
)

// Do runs fn on the compute thread in a scope and fails the test on error.
func Do(t testing.TB, fn func(s *torch.Scope) error) {
	t.Helper()
	if err := torch.Do(func() error { return torch.Scoped(fn) }); err != nil {
		t.Fatal(err)
	}
}

// Values copies a tensor's values as float64, failing the test on error.
func Values(t testing.TB, x *torch.Tensor) []float64 {
	t.Helper()
	v, err := x.Float64s()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// CUDAOrSkip returns GPU 0, skips the test when the bridge has no CUDA
// device, and fails it instead when the GPU script said CUDA must be there
// (MADCLIP_EXPECT_CUDA=1).
func CUDAOrSkip(t testing.TB) torch.Device {
	t.Helper()
	if !torch.CUDAAvailable() {
		if os.Getenv("MADCLIP_EXPECT_CUDA") == "1" {
			t.Fatal("MADCLIP_EXPECT_CUDA=1 but the bridge reports no CUDA device (was libtorch_cuda linked?)")
		}
		t.Skip("no CUDA device (CPU-only libtorch)")
	}
	return torch.CUDA(0)
}
