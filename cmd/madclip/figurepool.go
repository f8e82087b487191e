package main

import (
	"runtime"
	"sync"

	"madclip/infer"
)

// figureBytes bounds the full-size originals that the pictures being drawn
// hold: scans of 240 or 512 px are drawn on every core at once, while a
// 4000² scan (48 MB) is drawn alone, as before the pool, so that memory
// stays bounded by the batch, not by the cores.
const figureBytes = 64 << 20

// figurePool writes the outputs of scored images (heatmaps, panels, masks,
// raw maps) on up to one goroutine per core beside the model, and hands
// each image's row to emit in input order once its outputs are written.
// The first error, from a write or from emit, stops it: submit returns it,
// so that the stream stops, and close too. The images already in flight
// are finished, and the rows of those whose writes succeeded emitted
// (unless emit failed), so that what was written is reported.
type figurePool struct {
	queue   chan chan figureOutcome // in input order; its capacity bounds the images in flight
	printed chan struct{}           // closed once every outcome is handled
	mu      sync.Mutex
	room    *sync.Cond // signalled when held shrinks
	held    int64      // bytes of the originals in flight
	err     error
}

type figureOutcome struct {
	row prediction
	err error
}

func newFigurePool(workers int, emit func(prediction) error) *figurePool {
	p := &figurePool{queue: make(chan chan figureOutcome, max(workers, 1)), printed: make(chan struct{})}
	p.room = sync.NewCond(&p.mu)
	go func() {
		defer close(p.printed)
		emitFailed := false
		for slot := range p.queue {
			o := <-slot
			err := o.err
			if err == nil && !emitFailed {
				if err = emit(o.row); err != nil {
					emitFailed = true // stdout is gone: no row after this one
				}
			}
			if err != nil {
				p.mu.Lock()
				if p.err == nil {
					p.err = err
				}
				p.mu.Unlock()
			}
		}
	}()
	return p
}

func (p *figurePool) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// submit runs write for an image whose original holds size bytes, once
// the originals in flight leave room for it (one larger than figureBytes
// waits for all others), and returns the first error so far.
func (p *figurePool) submit(size int64, write func() (prediction, error)) error {
	size = min(size, figureBytes)
	p.mu.Lock()
	for p.held > 0 && p.held+size > figureBytes && p.err == nil {
		p.room.Wait()
	}
	err := p.err
	if err == nil {
		p.held += size
	}
	p.mu.Unlock()
	if err != nil {
		return err
	}
	slot := make(chan figureOutcome, 1)
	p.queue <- slot
	go func() {
		row, err := write()
		if size >= infer.LargeOriginal {
			runtime.GC()
		}
		p.mu.Lock()
		p.held -= size
		p.room.Broadcast()
		p.mu.Unlock()
		slot <- figureOutcome{row, err}
	}()
	return p.failed()
}

// close waits for every image in flight to be written and handled, and
// returns the first error.
func (p *figurePool) close() error {
	close(p.queue)
	<-p.printed
	return p.failed()
}
