package train

import (
	"context"
	"errors"
	"fmt"
	"time"

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
// writes the features into tensors allocated once on store, so that the
// cache never needs twice its size. When the GPU has no room for it, the
// cache goes to host memory (told through note). Progress goes to note
// every few seconds when caching takes that long (ViT-L/14 on a CPU takes
// minutes).
// An interruption (ctx) stops it between chunks: a few seconds' work on
// either device (cacheChunk).
func newFeatureCache(ctx context.Context, m *model.MadCLIP, images *torch.Tensor, compute, store torch.Device, note func(string)) (*featureCache, error) {
	n := images.Size(0)
	chunk := cacheChunk(compute)
	c := &featureCache{dev: store}
	start, last := time.Now(), time.Now()
	for lo := int64(0); lo < n; lo += chunk {
		if lo > 0 && time.Since(last) > 5*time.Second {
			el := time.Since(start)
			left := time.Duration(float64(el) * float64(n-lo) / float64(lo))
			note(fmt.Sprintf("  %d/%d images cached, %s elapsed, about %s left", lo, n, el.Round(time.Second), left.Round(time.Second)))
			last = time.Now()
		}
		if ctx.Err() != nil {
			c.free()
			return nil, fmt.Errorf("%w while caching features, before the first step; nothing was saved", ErrInterrupted)
		}
		k := min(chunk, n-lo)
		err := model.WithPrecision(compute, func() error {
			return torch.Scoped(func(s *torch.Scope) error { // frees the chunk's intermediates
				taps := m.Features(images.Narrow(0, lo, k))
				if c.layers == nil {
					if err := c.allocate(taps, n, note); err != nil {
						return err
					}
				}
				for i, tp := range taps {
					if err := c.layers[i].Narrow(0, lo, k).CopyFrom(tp); err != nil {
						return err
					}
				}
				return nil
			})
		})
		if err != nil {
			c.free()
			return nil, err
		}
	}
	return c, nil
}

// cacheChunk is how many images the backbone takes at once while caching:
// 32 fill a GPU; on the CPU a larger batch is no faster per image, and 8
// keep a ViT-L/14 chunk to seconds, so that progress and an interruption
// are heard soon.
func cacheChunk(compute torch.Device) int64 {
	if compute.IsCUDA() {
		return 32
	}
	return 8
}

// allocate makes the cache's tensors, [n, tokens, width] in the taps' dtype,
// on the cache's device, or in host memory when the GPU has no room.
func (c *featureCache) allocate(taps []*torch.Tensor, n int64, note func(string)) error {
	for _, tp := range taps {
		shape := tp.Shape()
		if len(shape) == 0 {
			return tp.Err()
		}
		shape[0] = n
		// A failed try leaves the enclosing scope without error, so that
		// the cache goes on in host memory.
		t, err := torch.TryEmpty(tp.DType(), c.dev, shape...)
		if errors.Is(err, torch.ErrOOM) && c.dev.IsCUDA() {
			note("GPU memory is full: keeping the feature cache in host memory")
			c.dev = torch.CPU
			for i, l := range c.layers {
				c.layers[i] = l.ToDevice(torch.CPU).Persist()
				l.Free()
			}
			t, err = torch.TryEmpty(tp.DType(), c.dev, shape...)
		}
		if err != nil {
			return err
		}
		c.layers = append(c.layers, t.Persist())
	}
	return nil
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

// nonFinite counts the cached features that are NaN or infinite: the
// sign of CLIP weights that are corrupt, not of a learning rate too high.
func (c *featureCache) nonFinite() (int64, error) {
	var n int64
	for _, l := range c.layers {
		k, err := l.NonFinite()
		if err != nil {
			return 0, err
		}
		n += k
	}
	return n, nil
}

func (c *featureCache) free() {
	if c == nil {
		return
	}
	for _, l := range c.layers {
		l.Free()
	}
	c.layers = nil
}
