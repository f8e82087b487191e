// Package cliptest writes small CLIP weights files for tests: the tiny
// preset with random weights under OpenAI's tensor names, as the released
// files hold them. (It is apart from torchtest, which CLIP's own tests use.)
package cliptest

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
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

// WriteSparse writes a safetensors file with the tensors, shapes and
// sizes of cfg's CLIP, its data a hole: only the header is real, which is
// all a check of the architecture
// reads.
func WriteSparse(t *testing.T, path string, cfg clip.Config) {
	t.Helper()
	shapes := clip.ExpectedShapes(cfg)
	names := slices.Sorted(maps.Keys(shapes))
	hdr := map[string]any{}
	var off int64
	for _, n := range names {
		size := int64(2)
		for _, d := range shapes[n] {
			size *= d
		}
		shape := append([]int64{}, shapes[n]...) // a scalar's is [], not null
		hdr[n] = map[string]any{"dtype": "F16", "shape": shape, "data_offsets": []int64{off, off + size}}
		off += size
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(js))))
	f.Write(js)
	if err := f.Truncate(8 + int64(len(js)) + off); err != nil {
		t.Fatal(err)
	}
}
