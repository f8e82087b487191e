// Package param hands out a model's parameters by their checkpoint names:
// loaded from weights, created at random for models built without them, or
// only recorded with their shapes. CLIP and MadCLIP build through it.
package param

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"madclip/torch"
)

// Init says how a parameter is created when a model is built without
// weights (random initialisation for tiny models and new layers).
type Init struct {
	kind initKind
	std  float64 // the normal's standard deviation, the uniform's bound, or the constant
}

// initKind is the distribution an Init draws from.
type initKind int

const (
	initZeros initKind = iota
	initOnes
	initNormal
	initUniform
	initConst
)

// Zeros fills the parameter with zeros.
func Zeros() Init { return Init{kind: initZeros} }

// Ones fills the parameter with ones.
func Ones() Init { return Init{kind: initOnes} }

// Const fills the parameter with v.
func Const(v float64) Init { return Init{kind: initConst, std: v} }

// Normal draws from N(0, std²).
func Normal(std float64) Init { return Init{kind: initNormal, std: std} }

// Uniform draws from U[-bound, bound) (nn.Linear's default uses
// bound = 1/√fan_in).
func Uniform(bound float64) Init { return Init{kind: initUniform, std: bound} }

// Builder hands out a model's parameters by their checkpoint names. The same
// constructor tree loads weights (every name must exist with the right
// shape, and every weight must be used) or creates fresh parameters.
type Builder struct {
	root   *buildState
	prefix string
}

type buildState struct {
	shapes    map[string][]int64       // set when only recording names and shapes
	src       map[string]*torch.Tensor // nil when creating parameters
	gen       *torch.Generator
	dtype     torch.DType
	dev       torch.Device
	store     *torch.Store
	used      map[string]bool
	missing   []string
	misshaped []string
	err       error
}

// NewLoadBuilder builds from loaded tensors, which it takes ownership of.
func NewLoadBuilder(src map[string]*torch.Tensor) *Builder {
	return &Builder{root: &buildState{src: src, store: torch.NewStore(), used: map[string]bool{}}}
}

// NewInitBuilder creates parameters of dtype on dev, drawing from gen.
func NewInitBuilder(gen *torch.Generator, dtype torch.DType, dev torch.Device) *Builder {
	return &Builder{root: &buildState{gen: gen, dtype: dtype, dev: dev, store: torch.NewStore(), used: map[string]bool{}}}
}

// NewShapeRecorder creates nothing: it records the name and shape of every
// parameter asked for, which Shapes then returns. Get gives nil tensors.
func NewShapeRecorder() *Builder {
	return &Builder{root: &buildState{shapes: map[string][]int64{}, used: map[string]bool{}}}
}

// Shapes is what a recorder saw: every parameter's name and shape.
func (b *Builder) Shapes() map[string][]int64 { return b.root.shapes }

// Sub is the builder for the child called name.
func (b *Builder) Sub(name string) *Builder {
	p := name
	if b.prefix != "" {
		p = b.prefix + "." + name
	}
	return &Builder{root: b.root, prefix: p}
}

// Get returns the parameter name of the given shape.
func (b *Builder) Get(name string, init Init, shape ...int64) *torch.Tensor {
	full := name
	if b.prefix != "" {
		full = b.prefix + "." + name
	}
	r := b.root
	if r.used[full] {
		r.fail(fmt.Errorf("parameter %s requested twice", full))
		return nil
	}
	r.used[full] = true
	if r.shapes != nil {
		r.shapes[full] = shape
		return nil
	}
	if r.src == nil {
		t := r.create(init, shape)
		if err := r.store.Add(full, t); err != nil {
			r.fail(err)
			return nil
		}
		return t
	}
	t, ok := r.src[full]
	if !ok {
		r.missing = append(r.missing, full)
		return nil
	}
	if got := t.Shape(); !slices.Equal(got, shape) {
		r.misshaped = append(r.misshaped, fmt.Sprintf("%s has shape %v, want %v", full, got, shape))
	}
	if err := r.store.Add(full, t); err != nil {
		r.fail(err)
	}
	return t
}

func (r *buildState) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

func (r *buildState) create(init Init, shape []int64) *torch.Tensor {
	var t *torch.Tensor
	err := torch.Scoped(func(s *torch.Scope) error {
		switch init.kind {
		case initOnes:
			t = torch.Ones(r.dtype, r.dev, shape...)
		case initConst:
			t = torch.Full(init.std, r.dtype, r.dev, shape...)
		case initNormal:
			// Drawn on the CPU so that every device gets the same values.
			t = torch.Randn(r.gen, torch.Float32, torch.CPU, shape...).MulScalar(init.std).To(r.dtype, r.dev)
		case initUniform:
			t = torch.Rand(r.gen, torch.Float32, torch.CPU, shape...).MulScalar(2*init.std).SubScalar(init.std).To(r.dtype, r.dev)
		default:
			t = torch.Zeros(r.dtype, r.dev, shape...)
		}
		s.Keep(t)
		return t.Err()
	})
	if err != nil {
		r.fail(err)
	}
	return t
}

// MismatchError is Finish's error when the tensors loaded are not the
// model's: names missing, names the model lacks, other shapes (Detail
// lists them, a few of each).
type MismatchError struct{ Detail string }

func (e *MismatchError) Error() string { return "weights do not match the model: " + e.Detail }

// Finish checks that every weight was found with its shape and used, and
// returns the store that owns the parameters. On error everything is freed.
func (b *Builder) Finish() (*torch.Store, error) {
	r := b.root
	var unexpected []string
	for name, t := range r.src {
		if !r.used[name] {
			unexpected = append(unexpected, name)
			t.Free()
		}
	}
	var parts []string
	list := func(what string, names []string) {
		if len(names) == 0 {
			return
		}
		sort.Strings(names)
		more := ""
		if len(names) > 6 {
			more = fmt.Sprintf(" and %d more", len(names)-6)
			names = names[:6]
		}
		parts = append(parts, what+" "+strings.Join(names, ", ")+more)
	}
	list("missing", r.missing)
	list("unexpected", unexpected)
	list("misshaped:", r.misshaped)
	err := r.err
	if err == nil && len(parts) > 0 {
		err = &MismatchError{Detail: strings.Join(parts, "; ")}
	}
	if err != nil {
		r.store.Free()
		return nil, err
	}
	return r.store, nil
}
