// Package cliptest writes small CLIP weights files for tests: the tiny
// preset with random weights under OpenAI's tensor names, as the released
// files hold them. (It is apart from torchtest, which CLIP's own tests use.)
package cliptest

import (
	"fmt"
	"math"
	"testing"

	"madclip/model/clip"
	"madclip/torch"
)

// WriteTiny saves the tiny preset drawn with seed to path as safetensors,
// each tensor in dtype (OpenAI's releases are Float16), failing the test on
// error.
func WriteTiny(t testing.TB, path string, seed uint64, dtype torch.DType) {
	t.Helper()
	WriteConfig(t, path, clip.Tiny(), seed, dtype)
}

// WriteConfig is WriteTiny for any architecture (e.g. the tiny preset with
// fewer blocks).
func WriteConfig(t testing.TB, path string, cfg clip.Config, seed uint64, dtype torch.DType) {
	t.Helper()
	write(t, path, cfg, seed, dtype, "")
}

// WriteTinyNaN is WriteTiny in float32 with the tensor called name all NaN:
// corrupt weights that load and give NaN features.
func WriteTinyNaN(t testing.TB, path string, seed uint64, name string) {
	t.Helper()
	write(t, path, clip.Tiny(), seed, torch.Float32, name)
}

func write(t testing.TB, path string, cfg clip.Config, seed uint64, dtype torch.DType, nan string) {
	t.Helper()
	err := torch.Do(func() error {
		return torch.Scoped(func(s *torch.Scope) error {
			m, err := clip.New(cfg, clip.Options{}, seed)
			if err != nil {
				return err
			}
			defer m.Free()
			params := map[string]*torch.Tensor{}
			for k, v := range m.Params().Map() {
				params[k] = v.ToDType(dtype)
			}
			if nan != "" {
				p, ok := params[nan]
				if !ok {
					return fmt.Errorf("no tensor %s to fill with NaN", nan)
				}
				params[nan] = p.MulScalar(math.NaN())
			}
			return torch.SaveSafetensors(path, params, nil)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
