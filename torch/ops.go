package torch

/*
#include "tb.h"
*/
import "C"

func unary(op string, code C.int, x *Tensor) *Tensor {
	return apply(op, func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_unary(code, hs[0], out)
	}, x)
}

func binary(op string, code C.int, a, b *Tensor) *Tensor {
	return apply(op, func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_binary(code, hs[0], hs[1], out)
	}, a, b)
}

func binaryScalar(op string, code C.int, a *Tensor, s float64) *Tensor {
	return apply(op, func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_binary_scalar(code, hs[0], C.double(s), out)
	}, a)
}

// Elementwise unary operations.

func (t *Tensor) Neg() *Tensor        { return unary("neg", C.TB_NEG, t) }
func (t *Tensor) Exp() *Tensor        { return unary("exp", C.TB_EXP, t) }
func (t *Tensor) Log() *Tensor        { return unary("log", C.TB_LOG, t) }
func (t *Tensor) Sqrt() *Tensor       { return unary("sqrt", C.TB_SQRT, t) }
func (t *Tensor) Rsqrt() *Tensor      { return unary("rsqrt", C.TB_RSQRT, t) }
func (t *Tensor) Abs() *Tensor        { return unary("abs", C.TB_ABS, t) }
func (t *Tensor) Sigmoid() *Tensor    { return unary("sigmoid", C.TB_SIGMOID, t) }
func (t *Tensor) LogSigmoid() *Tensor { return unary("logsigmoid", C.TB_LOGSIGMOID, t) }
func (t *Tensor) Tanh() *Tensor       { return unary("tanh", C.TB_TANH, t) }
func (t *Tensor) Relu() *Tensor       { return unary("relu", C.TB_RELU, t) }
func (t *Tensor) Sin() *Tensor        { return unary("sin", C.TB_SIN, t) }
func (t *Tensor) Cos() *Tensor        { return unary("cos", C.TB_COS, t) }
func (t *Tensor) Square() *Tensor     { return unary("square", C.TB_SQUARE, t) }
func (t *Tensor) Erf() *Tensor        { return unary("erf", C.TB_ERF, t) }
func (t *Tensor) Floor() *Tensor      { return unary("floor", C.TB_FLOOR, t) }
func (t *Tensor) Ceil() *Tensor       { return unary("ceil", C.TB_CEIL, t) }
func (t *Tensor) Round() *Tensor      { return unary("round", C.TB_ROUND, t) }
func (t *Tensor) LogicalNot() *Tensor { return unary("logical_not", C.TB_LOGICAL_NOT, t) }
func (t *Tensor) IsNaN() *Tensor      { return unary("isnan", C.TB_ISNAN, t) }
func (t *Tensor) IsFinite() *Tensor   { return unary("isfinite", C.TB_ISFINITE, t) }

// Gelu is the exact GELU, x·Φ(x).
func (t *Tensor) Gelu() *Tensor { return unary("gelu", C.TB_GELU, t) }

// GeluTanh is GELU's tanh approximation.
func (t *Tensor) GeluTanh() *Tensor { return unary("gelu_tanh", C.TB_GELU_TANH, t) }

// QuickGelu is x·sigmoid(1.702·x), the activation OpenAI's CLIP was trained with.
func (t *Tensor) QuickGelu() *Tensor { return t.Mul(t.MulScalar(1.702).Sigmoid()) }

// Contiguous returns the tensor in row-major memory order.
func (t *Tensor) Contiguous() *Tensor { return unary("contiguous", C.TB_CONTIGUOUS, t) }

// Clone copies the tensor's data (differentiably).
func (t *Tensor) Clone() *Tensor { return unary("clone", C.TB_CLONE, t) }

// Detach returns the same data cut off from the autograd graph.
func (t *Tensor) Detach() *Tensor { return unary("detach", C.TB_DETACH, t) }

// LeakyRelu is max(x, 0) + slope·min(x, 0).
func (t *Tensor) LeakyRelu(slope float64) *Tensor {
	return apply("leaky_relu", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_leaky_relu(hs[0], C.double(slope), out)
	}, t)
}

func clamp(op string, t *Tensor, hasLo bool, lo float64, hasHi bool, hi float64) *Tensor {
	return apply(op, func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_clamp(hs[0], cBool(hasLo), C.double(lo), cBool(hasHi), C.double(hi), out)
	}, t)
}

// Clamp limits every element to [lo, hi].
func (t *Tensor) Clamp(lo, hi float64) *Tensor { return clamp("clamp", t, true, lo, true, hi) }

// ClampMin limits every element to at least lo.
func (t *Tensor) ClampMin(lo float64) *Tensor { return clamp("clamp_min", t, true, lo, false, 0) }

// ClampMax limits every element to at most hi.
func (t *Tensor) ClampMax(hi float64) *Tensor { return clamp("clamp_max", t, false, 0, true, hi) }

// Elementwise binary operations, broadcasting as PyTorch does.

func (t *Tensor) Add(o *Tensor) *Tensor        { return binary("add", C.TB_ADD, t, o) }
func (t *Tensor) Sub(o *Tensor) *Tensor        { return binary("sub", C.TB_SUB, t, o) }
func (t *Tensor) Mul(o *Tensor) *Tensor        { return binary("mul", C.TB_MUL, t, o) }
func (t *Tensor) Div(o *Tensor) *Tensor        { return binary("div", C.TB_DIV, t, o) }
func (t *Tensor) Pow(o *Tensor) *Tensor        { return binary("pow", C.TB_POW, t, o) }
func (t *Tensor) Maximum(o *Tensor) *Tensor    { return binary("maximum", C.TB_MAXIMUM, t, o) }
func (t *Tensor) Minimum(o *Tensor) *Tensor    { return binary("minimum", C.TB_MINIMUM, t, o) }
func (t *Tensor) Eq(o *Tensor) *Tensor         { return binary("eq", C.TB_EQ, t, o) }
func (t *Tensor) Ne(o *Tensor) *Tensor         { return binary("ne", C.TB_NE, t, o) }
func (t *Tensor) Lt(o *Tensor) *Tensor         { return binary("lt", C.TB_LT, t, o) }
func (t *Tensor) Le(o *Tensor) *Tensor         { return binary("le", C.TB_LE, t, o) }
func (t *Tensor) Gt(o *Tensor) *Tensor         { return binary("gt", C.TB_GT, t, o) }
func (t *Tensor) Ge(o *Tensor) *Tensor         { return binary("ge", C.TB_GE, t, o) }
func (t *Tensor) LogicalAnd(o *Tensor) *Tensor { return binary("logical_and", C.TB_LOGICAL_AND, t, o) }
func (t *Tensor) LogicalOr(o *Tensor) *Tensor  { return binary("logical_or", C.TB_LOGICAL_OR, t, o) }

// Matmul is the matrix product with PyTorch's broadcasting rules.
func (t *Tensor) Matmul(o *Tensor) *Tensor { return binary("matmul", C.TB_MATMUL, t, o) }

// Operations with a scalar on the right (or, for RSub/RDiv/RPow, the left).

func (t *Tensor) AddScalar(s float64) *Tensor  { return binaryScalar("add", C.TB_ADD, t, s) }
func (t *Tensor) SubScalar(s float64) *Tensor  { return binaryScalar("sub", C.TB_SUB, t, s) }
func (t *Tensor) MulScalar(s float64) *Tensor  { return binaryScalar("mul", C.TB_MUL, t, s) }
func (t *Tensor) DivScalar(s float64) *Tensor  { return binaryScalar("div", C.TB_DIV, t, s) }
func (t *Tensor) PowScalar(s float64) *Tensor  { return binaryScalar("pow", C.TB_POW, t, s) }
func (t *Tensor) EqScalar(s float64) *Tensor   { return binaryScalar("eq", C.TB_EQ, t, s) }
func (t *Tensor) NeScalar(s float64) *Tensor   { return binaryScalar("ne", C.TB_NE, t, s) }
func (t *Tensor) LtScalar(s float64) *Tensor   { return binaryScalar("lt", C.TB_LT, t, s) }
func (t *Tensor) LeScalar(s float64) *Tensor   { return binaryScalar("le", C.TB_LE, t, s) }
func (t *Tensor) GtScalar(s float64) *Tensor   { return binaryScalar("gt", C.TB_GT, t, s) }
func (t *Tensor) GeScalar(s float64) *Tensor   { return binaryScalar("ge", C.TB_GE, t, s) }
func (t *Tensor) RSubScalar(s float64) *Tensor { return binaryScalar("rsub", C.TB_RSUB, t, s) } // s - t
func (t *Tensor) RDivScalar(s float64) *Tensor { return binaryScalar("rdiv", C.TB_RDIV, t, s) } // s / t
func (t *Tensor) RPowScalar(s float64) *Tensor { return binaryScalar("rpow", C.TB_RPOW, t, s) } // s ^ t

// Where picks a where cond is true and b elsewhere.
func Where(cond, a, b *Tensor) *Tensor {
	return apply("where", func(hs []*C.tb_tensor, out **C.tb_tensor) *C.tb_error {
		return C.tb_where(hs[0], hs[1], hs[2], out)
	}, cond, a, b)
}
