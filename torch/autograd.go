package torch

/*
#include "tb.h"
*/
import "C"

import "unsafe"

// SetRequiresGrad marks a leaf tensor as one whose gradient is wanted.
func (t *Tensor) SetRequiresGrad(on bool) error {
	h, err, _ := t.handle("requires_grad")
	if err != nil {
		return err
	}
	return check("requires_grad", C.tb_set_requires_grad(h, cBool(on)))
}

// RequiresGrad reports whether autograd tracks this tensor.
func (t *Tensor) RequiresGrad() bool {
	in, err := t.Info()
	return err == nil && in.RequiresGrad
}

// Backward computes the gradients of a scalar tensor with respect to every
// leaf that requires them, accumulating into their Grad.
func (t *Tensor) Backward() error { return t.BackwardWith(nil, false) }

// BackwardWith back-propagates the seed gradient grad (nil for a scalar t);
// retainGraph keeps the graph for another backward pass.
func (t *Tensor) BackwardWith(grad *Tensor, retainGraph bool) error {
	h, err, _ := t.handle("backward")
	if err != nil {
		return err
	}
	var gh *C.tb_tensor
	if grad != nil {
		if gh, err, _ = grad.handle("backward"); err != nil {
			return err
		}
	}
	return check("backward", C.tb_backward(h, gh, cBool(retainGraph)))
}

// Grad is the accumulated gradient, or nil when there is none.
func (t *Tensor) Grad() *Tensor {
	hs, bad := operands("grad", t)
	if bad != nil {
		return bad
	}
	var out *C.tb_tensor
	if err := check("grad", C.tb_grad(hs[0], &out)); err != nil {
		return failed(err)
	}
	if out == nil {
		return nil
	}
	return newTensor(out)
}

// ZeroGrad drops the accumulated gradient (as set_to_none does).
func (t *Tensor) ZeroGrad() error {
	h, err, _ := t.handle("zero_grad")
	if err != nil {
		return err
	}
	return check("zero_grad", C.tb_zero_grad(h))
}

// CopyFrom overwrites the tensor's values with src's (broadcast and
// converted), outside autograd.
func (t *Tensor) CopyFrom(src *Tensor) error {
	h, err, _ := t.handle("copy")
	if err != nil {
		return err
	}
	hs, err, _ := src.handle("copy")
	if err != nil {
		return err
	}
	return check("copy", C.tb_copy_(h, hs))
}

// Fill sets every element to v, outside autograd.
func (t *Tensor) Fill(v float64) error {
	h, err, _ := t.handle("fill")
	if err != nil {
		return err
	}
	return check("fill", C.tb_fill_(h, C.double(v)))
}

// AdamConfig holds Adam's hyper-parameters, as torch.optim.Adam takes them
// (weight decay is the L2 form added to the gradient).
type AdamConfig struct {
	LR, Beta1, Beta2, Eps, WeightDecay float64
}

// DefaultAdam is torch.optim.Adam's default configuration.
func DefaultAdam() AdamConfig { return AdamConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8} }

// Adam updates a fixed list of parameters with the Adam rule.
type Adam struct {
	a      *C.tb_adam
	params []*Tensor
}

// NewAdam creates an optimizer over params, which must outlive it.
func NewAdam(params []*Tensor, cfg AdamConfig) (*Adam, error) {
	hs := make([]*C.tb_tensor, len(params))
	for i, p := range params {
		h, err, _ := p.handle("adam")
		if err != nil {
			return nil, err
		}
		hs[i] = h
	}
	var a *C.tb_adam
	var first **C.tb_tensor
	if len(hs) > 0 {
		first = (**C.tb_tensor)(unsafe.Pointer(&hs[0]))
	}
	if err := check("adam", C.tb_adam_new(first, C.int(len(hs)), C.double(cfg.LR), C.double(cfg.Beta1), C.double(cfg.Beta2), C.double(cfg.Eps), C.double(cfg.WeightDecay), &a)); err != nil {
		return nil, err
	}
	return &Adam{a: a, params: params}, nil
}

func (o *Adam) ok() error {
	if o == nil || o.a == nil {
		return argError("adam", "optimiser used after Free")
	}
	return nil
}

// Step applies one update to every parameter that has a gradient.
func (o *Adam) Step() error {
	if err := o.ok(); err != nil {
		return err
	}
	return check("adam step", C.tb_adam_step(o.a))
}

// ZeroGrad drops every parameter's gradient.
func (o *Adam) ZeroGrad() error {
	if err := o.ok(); err != nil {
		return err
	}
	return check("adam zero_grad", C.tb_adam_zero_grad(o.a))
}

// SetLR changes the learning rate for the following steps.
func (o *Adam) SetLR(lr float64) {
	if o.ok() == nil {
		C.tb_adam_set_lr(o.a, C.double(lr))
	}
}

// Steps is the number of updates taken so far.
func (o *Adam) Steps() int64 {
	if o.ok() != nil {
		return 0
	}
	return int64(C.tb_adam_steps(o.a))
}

// State returns copies of parameter i's first and second moments (nil before
// its first update), for checkpoints.
func (o *Adam) State(i int) (m, v *Tensor, err error) {
	if err := o.ok(); err != nil {
		return nil, nil, err
	}
	var cm, cv *C.tb_tensor
	if err := check("adam state", C.tb_adam_get_state(o.a, C.int(i), &cm, &cv)); err != nil {
		return nil, nil, err
	}
	if cm == nil {
		return nil, nil, nil
	}
	return newTensor(cm), newTensor(cv), nil
}

// SetState restores the step count and parameter i's moments.
func (o *Adam) SetState(steps int64, i int, m, v *Tensor) error {
	if err := o.ok(); err != nil {
		return err
	}
	hs, bad := operands("adam set_state", m, v)
	if bad != nil {
		return bad.err
	}
	return check("adam set_state", C.tb_adam_set_state(o.a, C.int64_t(steps), C.int(i), hs[0], hs[1]))
}

// Free releases the optimizer's state (not the parameters).
func (o *Adam) Free() {
	if o != nil && o.a != nil {
		C.tb_adam_free(o.a)
		o.a = nil
	}
}
