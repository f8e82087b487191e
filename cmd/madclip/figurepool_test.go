package main

import (
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// poolRun submits n images of the given sizes to a pool of workers whose
// writes take a random few milliseconds (failing where fail says), and
// returns the rows emitted, the most writes seen at once, and close's error.
func poolRun(t *testing.T, workers int, sizes []int64, fail func(int) error, emitFail func(int) error) (rows []int, most int32, err error) {
	t.Helper()
	var running atomic.Int32
	var mu sync.Mutex
	p := newFigurePool(workers, func(r prediction) error {
		i := int(r.Score)
		if emitFail != nil {
			if err := emitFail(i); err != nil {
				return err
			}
		}
		mu.Lock()
		rows = append(rows, i)
		mu.Unlock()
		return nil
	})
	rng := rand.New(rand.NewPCG(1, 2))
	for i, size := range sizes {
		delay := time.Duration(3000+rng.IntN(4000)) * time.Microsecond
		if p.submit(size, func() (prediction, error) {
			n := running.Add(1)
			for {
				m := atomic.LoadInt32(&most)
				if n <= m || atomic.CompareAndSwapInt32(&most, m, n) {
					break
				}
			}
			time.Sleep(delay)
			running.Add(-1)
			if fail != nil {
				if err := fail(i); err != nil {
					return prediction{}, err
				}
			}
			return prediction{Score: float64(i)}, nil
		}) != nil {
			break
		}
	}
	err = p.close()
	return rows, most, err
}

func TestFigurePoolOrderAndParallelism(t *testing.T) {
	sizes := make([]int64, 60)
	for i := range sizes {
		sizes[i] = 240 * 240 * 3
	}
	rows, most, err := poolRun(t, 4, sizes, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(sizes) {
		t.Fatalf("%d rows, want %d", len(rows), len(sizes))
	}
	for i, r := range rows {
		if r != i {
			t.Fatalf("row %d is image %d: rows out of the inputs' order", i, r)
		}
	}
	// Up to the queue's 4 and the one the printer waits on.
	if most < 2 || most > 5 {
		t.Errorf("%d writes at once with 4 workers, want 2 to 5", most)
	}
}

// Originals past the byte budget are drawn one at a time.
func TestFigurePoolByteBudget(t *testing.T) {
	sizes := make([]int64, 12)
	for i := range sizes {
		sizes[i] = 4000 * 4000 * 3 // over figureBytes: each alone
	}
	rows, most, err := poolRun(t, 8, sizes, nil, nil)
	if err != nil || len(rows) != len(sizes) {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
	if most != 1 {
		t.Errorf("%d large originals drawn at once, want 1", most)
	}
	for i := range sizes {
		sizes[i] = figureBytes / 3
	}
	if _, most, _ = poolRun(t, 8, sizes, nil, nil); most != 3 {
		t.Errorf("%d originals of a third of the budget drawn at once, want 3", most)
	}
}

// A failed write stops the pool: its error comes back, no new image is
// taken, and the rows of the images written around it are still emitted.
func TestFigurePoolWriteError(t *testing.T) {
	sizes := make([]int64, 40)
	boom := errors.New("figure too large")
	rows, _, err := poolRun(t, 3, sizes, func(i int) error {
		if i == 5 {
			return boom
		}
		return nil
	}, nil)
	if !errors.Is(err, boom) {
		t.Fatalf("close: %v, want the write's error", err)
	}
	if len(rows) < 5 || len(rows) >= len(sizes)-1 {
		t.Fatalf("%d rows emitted: want those before image 5 and few after", len(rows))
	}
	for i, r := range rows[:5] {
		if r != i {
			t.Fatalf("row %d is image %d", i, r)
		}
	}
	for _, r := range rows {
		if r == 5 {
			t.Fatal("the failed image has a row")
		}
	}
}

// When emitting fails (stdout gone), no row follows.
func TestFigurePoolEmitError(t *testing.T) {
	sizes := make([]int64, 30)
	closed := errors.New("write /dev/stdout: broken pipe")
	rows, _, err := poolRun(t, 2, sizes, nil, func(i int) error {
		if i >= 7 {
			return closed
		}
		return nil
	})
	if !errors.Is(err, closed) || len(rows) != 7 {
		t.Fatalf("%d rows, %v: want 7 and the emit error", len(rows), err)
	}
}
