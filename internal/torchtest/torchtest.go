// Package torchtest holds the tensor helpers tests above the torch package
// share.
package torchtest

import (
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
