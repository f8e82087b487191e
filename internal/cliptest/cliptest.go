// Package cliptest writes small CLIP weights files for tests: the tiny
// preset with random weights under OpenAI's tensor names, as the released
// files hold them. (It is apart from torchtest, which CLIP's own tests use.)
package cliptest

import (
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
			return torch.SaveSafetensors(path, params, nil)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}
