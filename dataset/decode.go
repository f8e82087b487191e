package dataset

import (
	"cmp"
	"runtime"
	"sync"

	"madclip/imaging"
	"madclip/internal/memlimit"
)

// Decoded is a sample decoded and resized, or the error that stopped it.
type Decoded struct {
	Sample Sample
	Index  int // its place in the list decoded
	Image  Image
	Orig   *imaging.RGB // the original image, when asked for (heatmaps)
	Err    error
}

// DecodeOptions say what Decode keeps besides the model's input.
type DecodeOptions struct {
	Masks        bool // decode each sample's ground-truth mask
	KeepOriginal bool // keep the full-size image (for heatmaps)
	// Ahead is how many items may be decoded and not yet taken (at least
	// one): memory is bounded by this window, not by the number of items.
	Ahead int
	// Limits bounds what is decoded (the zero value is the default): a
	// header claiming more pixels is an error before any decoding.
	Limits imaging.Limits
	// OriginalBytes, with KeepOriginal, bounds the bytes of the originals
	// decoded and not yet taken, as read from each image's header before
	// it is decoded (0: no bound beyond Ahead). An image larger than the
	// bound is decoded alone.
	OriginalBytes int64
	// WorkBytes bounds the memory of the decodes running at once
	// (imaging.DecodeBytes of each image's size, read from its header
	// before its pixels), so that a folder of decompression bombs, each
	// within the pixel limit, cannot together take more than the machine
	// has: 0 is half its memory. An image over the bound is decoded alone.
	WorkBytes int64
}

// Decode decodes samples on worker goroutines (one per CPU) and delivers
// them, prepared at size×size, in order on the returned channel. stop ends
// decoding early (after an error) and waits for the workers; calling it
// after the channel is drained is harmless.
func Decode(items []Sample, size int, o DecodeOptions) (ch <-chan Decoded, stop func()) {
	ahead := max(o.Ahead, 1)
	out := make(chan Decoded)
	done := make(chan struct{})
	tokens := make(chan struct{}, ahead)
	results := make([]chan Decoded, len(items))
	for i := range results {
		results[i] = make(chan Decoded, 1) // a worker never waits to hand over
	}
	next := make(chan int)
	lim := o.Limits
	if work := newByteBudget(cmp.Or(o.WorkBytes, memlimit.Bytes()/2), done); work != nil {
		lim.Reserve = work.reserve
	}
	var wg sync.WaitGroup
	for range runtime.NumCPU() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				d := Decoded{Sample: items[i], Index: i}
				var orig *imaging.RGB
				if orig, d.Err = imaging.LoadLimit(d.Sample.Path, lim); d.Err == nil {
					d.Image, d.Err = Prepare(orig, d.Sample, size, o.Masks)
				}
				if o.KeepOriginal {
					d.Orig = orig
				}
				results[i] <- d
			}
		}()
	}
	budget := newByteBudget(o.OriginalBytes, done)
	costs := make([]int64, len(items))
	go func() { // feeds the workers, no more than ahead items beyond the consumer
		defer close(next)
		for i := range items {
			select {
			case tokens <- struct{}{}:
			case <-done:
				return
			}
			if o.KeepOriginal && budget != nil {
				if w, h, err := imaging.Size(items[i].Path); err == nil { // else the worker reports it
					costs[i] = min(3*int64(w)*int64(h), budget.limit)
				}
				if !budget.acquire(costs[i]) {
					return
				}
			}
			select {
			case next <- i:
			case <-done:
				return
			}
		}
	}()
	go func() { // delivers in order
		defer close(out)
		for i := range items {
			var d Decoded
			select {
			case d = <-results[i]:
			case <-done:
				return
			}
			select {
			case out <- d:
			case <-done:
				return
			}
			<-tokens
			if budget != nil {
				budget.release(costs[i])
			}
		}
	}()
	var once sync.Once
	return out, func() {
		once.Do(func() {
			close(done)
			wg.Wait()
		})
	}
}

// byteBudget bounds the bytes held by items decoded and not yet taken.
type byteBudget struct {
	limit int64
	mu    sync.Mutex
	used  int64
	freed chan struct{} // a release happened
	done  <-chan struct{}
}

func newByteBudget(limit int64, done <-chan struct{}) *byteBudget {
	if limit <= 0 {
		return nil
	}
	return &byteBudget{limit: limit, freed: make(chan struct{}, 1), done: done}
}

// reserve takes what decoding a w×h image needs (at most the whole
// budget: a larger image is decoded alone) until the returned function is
// called. Once decoding is stopped it takes nothing.
func (b *byteBudget) reserve(w, h int) (release func()) {
	n := min(imaging.DecodeBytes(w, h), b.limit)
	if !b.acquire(n) {
		return func() {}
	}
	return func() { b.release(n) }
}

// acquire waits until n bytes fit (n is at most the limit), and reports
// false when decoding was stopped first.
func (b *byteBudget) acquire(n int64) bool {
	for {
		b.mu.Lock()
		if b.used+n <= b.limit {
			b.used += n
			room := b.used < b.limit
			b.mu.Unlock()
			if room { // another waiter may fit in what is left
				b.wake()
			}
			return true
		}
		b.mu.Unlock()
		select {
		case <-b.freed:
		case <-b.done:
			return false
		}
	}
}

func (b *byteBudget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.wake()
}

// wake tells one waiter, if any, to look again.
func (b *byteBudget) wake() {
	select {
	case b.freed <- struct{}{}:
	default:
	}
}
