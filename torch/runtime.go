package torch

/*
#include <stdlib.h>
#include "tb.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
)

// The bridge's runtime: the one goroutine, locked to its OS thread, that runs
// all libtorch work. libtorch keeps grad mode and autocast per thread, so
// work spread over threads would see them switch at random.
var compute struct {
	once sync.Once
	jobs chan func()
	tid  atomic.Int64
}

type panicked struct{ v any }

// Do runs fn on the compute goroutine and returns its error. Every use of
// the package's tensors must happen inside Do; calls nested inside fn run
// directly. A panic in fn is re-raised in the caller, and a runtime.Goexit in
// fn (such as testing's FailNow) ends the caller's goroutine too.
func Do(fn func() error) error {
	compute.once.Do(func() {
		compute.jobs = make(chan func())
		startWorker()
	})
	if OnComputeThread() {
		return fn()
	}
	done := make(chan any, 1)
	compute.jobs <- func() {
		finished := false
		defer func() {
			if finished {
				return
			}
			if r := recover(); r != nil {
				done <- panicked{r}
				return
			}
			// fn called runtime.Goexit: this goroutine (and its locked
			// thread) ends, so start another worker for the next jobs.
			done <- goexited{}
			startWorker()
		}()
		err := fn()
		finished = true
		done <- err
	}
	switch r := (<-done).(type) {
	case panicked:
		panic(r.v)
	case goexited:
		runtime.Goexit()
	case error:
		return r
	}
	return nil
}

type goexited struct{}

// startWorker starts the compute goroutine and waits until it runs.
func startWorker() {
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		compute.tid.Store(int64(syscall.Gettid()))
		close(ready)
		for job := range compute.jobs {
			job()
		}
	}()
	<-ready
}

// OnComputeThread reports whether the caller runs on the compute goroutine.
func OnComputeThread() bool {
	t := compute.tid.Load()
	return t != 0 && int64(syscall.Gettid()) == t
}

// Version is the libtorch version the bridge was built against.
func Version() string { return C.GoString(C.tb_torch_version()) }

// BuildConfig is libtorch's own description of its build (compiler, BLAS,
// CUDA, ...), as torch.__config__.show() prints it.
func BuildConfig() (string, error) {
	var s *C.char
	if err := check("build_config", C.tb_build_config(&s)); err != nil {
		return "", err
	}
	defer C.tb_string_free(s)
	return C.GoString(s), nil
}

// LiveTensors counts the tensor handles created and not yet freed, across
// the whole process. Tests use it to prove that work leaks nothing.
func LiveTensors() int64 { return int64(C.tb_live_tensors()) }

// ManualSeed seeds libtorch's default generators (CPU and every GPU).
func ManualSeed(seed uint64) error { return check("manual_seed", C.tb_manual_seed(C.uint64_t(seed))) }

// NumThreads is the size of libtorch's intra-op thread pool.
func NumThreads() int { return int(C.tb_get_num_threads()) }

// SetNumThreads sets the size of libtorch's intra-op thread pool.
func SetNumThreads(n int) error {
	return check("set_num_threads", C.tb_set_num_threads(C.int(n)))
}

// GradEnabled reports whether operations on the calling thread record
// gradients.
func GradEnabled() bool { return C.tb_grad_enabled() != 0 }

// NoGrad runs fn with gradient recording off, as torch.no_grad() does, and
// restores the previous mode afterwards, also when fn panics.
func NoGrad(fn func() error) error { return withGrad(false, fn) }

// WithGrad runs fn with gradient recording on.
func WithGrad(fn func() error) error { return withGrad(true, fn) }

func withGrad(on bool, fn func() error) error {
	prev := C.tb_grad_enabled()
	C.tb_set_grad_enabled(cBool(on))
	defer C.tb_set_grad_enabled(prev)
	return fn()
}

// Autocast runs fn inside an autocast region for the device type: matmuls,
// linears and convolutions run in dtype (bf16 or f16) while precision-
// sensitive ops stay in f32, as torch.autocast does.
func Autocast(dev DeviceType, dtype DType, fn func() error) error {
	var prevOn, prevDT C.int
	if err := check("autocast", C.tb_autocast_enter(C.int(dev), C.int(dtype), &prevOn, &prevDT)); err != nil {
		return err
	}
	exitErr := func() error {
		return check("autocast", C.tb_autocast_exit(C.int(dev), prevOn, prevDT))
	}
	defer func() {
		if r := recover(); r != nil {
			_ = exitErr()
			panic(r)
		}
	}()
	err := fn()
	if e := exitErr(); err == nil {
		err = e
	}
	return err
}

// AutocastEnabled reports whether an autocast region is active for dev on
// the calling thread.
func AutocastEnabled(dev DeviceType) bool { return C.tb_autocast_enabled(C.int(dev)) != 0 }

// Generator is a seeded random-number generator independent of the default
// one, so that drawing from it leaves other draws unchanged.
type Generator struct{ g *C.tb_generator }

// NewGenerator returns a CPU generator seeded with seed. Draws for a GPU
// tensor are made on the CPU and copied, so they equal the CPU draws.
func NewGenerator(seed uint64) (*Generator, error) {
	var g *C.tb_generator
	if err := check("generator", C.tb_generator_new(C.uint64_t(seed), &g)); err != nil {
		return nil, err
	}
	return &Generator{g: g}, nil
}

// Free releases the generator.
func (g *Generator) Free() {
	if g != nil && g.g != nil {
		C.tb_generator_free(g.g)
		g.g = nil
	}
}

func (g *Generator) handle() (*C.tb_generator, error) {
	if g == nil {
		return nil, nil
	}
	if g.g == nil {
		return nil, fmt.Errorf("generator used after Free")
	}
	return g.g, nil
}
