package train

import (
	"errors"

	"madclip/model"
	"madclip/torch"
)

// featureCache holds the frozen backbone's tapped features of a set of
// images ([N, 1+P, W] per layer), computed once. It lives on the compute
// device when it fits and falls back to host memory when the GPU runs out.
type featureCache struct {
	layers []*torch.Tensor
	dev    torch.Device // where the features are kept
}

// newFeatureCache runs the backbone over images in chunks on compute and
// keeps the features on store; a GPU out-of-memory error moves the cache to
// host memory (told through note) and carries on.
func newFeatureCache(m *model.MadCLIP, images *torch.Tensor, compute, store torch.Device, note func(string)) (*featureCache, error) {
	n := images.Size(0)
	const chunk = 32
	parts := make([][]*torch.Tensor, len(m.Opts.Layers))
	freeAll := func() {
		for _, ps := range parts {
			for _, p := range ps {
				p.Free()
			}
		}
	}
	toHost := func() error {
		note("GPU memory is full: keeping the feature cache in host memory")
		for i, ps := range parts {
			for j, p := range ps {
				h := p.ToDevice(torch.CPU)
				if err := h.Err(); err != nil {
					return err
				}
				p.Free()
				parts[i][j] = h
			}
		}
		store = torch.CPU
		return nil
	}
	for lo := int64(0); lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		for attempt := 0; ; attempt++ {
			var got []*torch.Tensor
			run := func() error {
				return torch.Scoped(func(s *torch.Scope) error { // frees the chunk's intermediates
					for _, tp := range m.Features(images.Narrow(0, lo, hi-lo)) {
						t := tp.ToDevice(store)
						if err := t.Err(); err != nil {
							return err
						}
						got = append(got, s.Keep(t))
					}
					return nil
				})
			}
			err := model.WithPrecision(compute, run)
			if err == nil {
				for i, t := range got {
					parts[i] = append(parts[i], t)
				}
				break
			}
			for _, t := range got {
				t.Free()
			}
			if errors.Is(err, torch.ErrOOM) && store.IsCUDA() && attempt == 0 {
				if err := toHost(); err != nil {
					freeAll()
					return nil, err
				}
				continue
			}
			freeAll()
			return nil, err
		}
	}
	c := &featureCache{dev: store}
	for i := range parts {
		t := torch.Cat(0, parts[i]...)
		if err := t.Err(); err != nil {
			if errors.Is(err, torch.ErrOOM) && store.IsCUDA() {
				// Concatenating needs the memory twice over: do it on the host.
				if err := toHost(); err != nil {
					freeAll()
					c.free()
					return nil, err
				}
				for j, l := range c.layers {
					h := l.ToDevice(torch.CPU)
					if err := h.Err(); err != nil {
						freeAll()
						c.free()
						return nil, err
					}
					l.Free()
					c.layers[j] = h
				}
				c.dev = torch.CPU
				t = torch.Cat(0, parts[i]...)
			}
			if err := t.Err(); err != nil {
				freeAll()
				c.free()
				return nil, err
			}
		}
		for _, p := range parts[i] {
			p.Free()
		}
		parts[i] = nil
		c.layers = append(c.layers, t)
	}
	return c, nil
}

// gather returns the features of the images idx, on dev.
func (c *featureCache) gather(idx []int64, dev torch.Device) []*torch.Tensor {
	ix := torch.FromSlice(idx).ToDevice(c.dev)
	out := make([]*torch.Tensor, len(c.layers))
	for i, l := range c.layers {
		out[i] = l.IndexSelect(0, ix).ToDevice(dev)
	}
	return out
}

func (c *featureCache) free() {
	for _, l := range c.layers {
		l.Free()
	}
	c.layers = nil
}
