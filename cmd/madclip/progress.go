package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
)

// isTerminal reports whether f is an interactive terminal.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// byteProgress shows a download: a progress bar on a terminal, a line every
// 10% otherwise, nothing when quiet.
type byteProgress struct {
	w      io.Writer
	quiet  bool
	bar    *progressbar.ProgressBar
	name   string
	have   int64
	total  int64
	stepAt int64
}

func newByteProgress(quiet bool) *byteProgress { return &byteProgress{w: os.Stderr, quiet: quiet} }

func (p *byteProgress) Start(name string, have, total int64) {
	p.name, p.have, p.total = name, have, total
	if p.quiet {
		return
	}
	if isTerminal(os.Stderr) {
		p.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetDescription(name),
			progressbar.OptionShowBytes(true),
			progressbar.OptionShowCount(),
			progressbar.OptionThrottle(100_000_000),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(p.w) }),
		)
		if have > 0 {
			_ = p.bar.Set64(have)
		}
		return
	}
	if have > 0 {
		fmt.Fprintf(p.w, "%s: resuming at %d bytes\n", name, have)
	} else {
		fmt.Fprintf(p.w, "%s: downloading %s\n", name, sizeText(total))
	}
	p.stepAt = p.have + p.total/10
}

func (p *byteProgress) Add(n int) {
	p.have += int64(n)
	if p.quiet {
		return
	}
	if p.bar != nil {
		_ = p.bar.Add(n)
		return
	}
	if p.total > 0 && p.have >= p.stepAt {
		fmt.Fprintf(p.w, "%s: %d%%\n", p.name, 100*p.have/p.total)
		p.stepAt += p.total / 10
	}
}

func (p *byteProgress) Done() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

func sizeText(n int64) string {
	switch {
	case n < 0:
		return "(size unknown)"
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d bytes", n)
	}
}

// countBar shows work over a known number of images as a bar on a
// terminal; elsewhere (a log) as a line every logEvery while it lasts; as a
// nil *countBar, nothing. A line written while the bar is drawn would be
// glued to it: Clear it first, and its next Set draws it again below the
// line. Its methods may be called from several goroutines.
type countBar struct {
	mu   sync.Mutex
	done int // what Advance counts
	bar  *progressbar.ProgressBar
	// In a log:
	w           io.Writer
	what        string
	total       int
	start, last time.Time
}

// logEvery is how often a count in a log gets a line.
const logEvery = 10 * time.Second

func newCountBar(what string, total int) *countBar {
	if !isTerminal(os.Stderr) {
		now := time.Now()
		return &countBar{w: os.Stderr, what: what, total: total, start: now, last: now}
	}
	return &countBar{bar: progressbar.NewOptions(total, progressbar.OptionSetWriter(os.Stderr), progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionOnCompletion(func() { fmt.Fprintln(os.Stderr) }))}
}

// Set shows done items finished.
func (b *countBar) Set(done int) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.set(done)
}

// Advance shows one more item finished than the last Advance did.
func (b *countBar) Advance() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.done++
	b.set(b.done)
}

func (b *countBar) set(done int) {
	switch {
	case b.bar != nil:
		_ = b.bar.Set(done)
	case done > 0 && done < b.total && time.Since(b.last) >= logEvery:
		b.last = time.Now()
		fmt.Fprintln(b.w, b.line(done, b.last.Sub(b.start)))
	}
}

// line is a log's progress line after el: "eval: 120/1000 images, 1m2s
// elapsed, about 7m35s left".
func (b *countBar) line(done int, el time.Duration) string {
	left := el / time.Duration(done) * time.Duration(b.total-done)
	return fmt.Sprintf("%s: %d/%d images, %s elapsed, about %s left", b.what, done, b.total, roundDuration(el), roundDuration(left))
}

// Clear erases the bar from its line.
func (b *countBar) Clear() {
	if b != nil && b.bar != nil {
		b.mu.Lock()
		defer b.mu.Unlock()
		_ = b.bar.Clear()
	}
}
