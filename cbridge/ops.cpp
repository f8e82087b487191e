// ops.cpp — the tensor operations CLIP and MadCLIP need. All are plain ATen
// calls, so autograd records them exactly as PyTorch does.
#include "internal.h"

#include <ATen/ops/abs.h>
#include <ATen/ops/affine_grid_generator.h>
#include <ATen/ops/amax.h>
#include <ATen/ops/amin.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/clamp.h>
#include <ATen/ops/conv2d.h>
#include <ATen/ops/embedding.h>
#include <ATen/ops/gelu.h>
#include <ATen/ops/grid_sampler.h>
#include <ATen/ops/layer_norm.h>
#include <ATen/ops/leaky_relu.h>
#include <ATen/ops/linear.h>
#include <ATen/ops/log_sigmoid.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/logical_and.h>
#include <ATen/ops/logical_not.h>
#include <ATen/ops/logical_or.h>
#include <ATen/ops/matmul.h>
#include <ATen/ops/max.h>
#include <ATen/ops/maximum.h>
#include <ATen/ops/mean.h>
#include <ATen/ops/min.h>
#include <ATen/ops/minimum.h>
#include <ATen/ops/norm.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/pow.h>
#include <ATen/ops/prod.h>
#include <ATen/ops/softmax.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/sum.h>
#include <ATen/ops/tril.h>
#include <ATen/ops/upsample_bicubic2d.h>
#include <ATen/ops/upsample_bilinear2d.h>
#include <ATen/ops/upsample_nearest2d.h>
#include <ATen/ops/where.h>
#include <ATen/ops/zeros_like.h>
#include <ATen/ops/_upsample_bicubic2d_aa.h>
#include <ATen/ops/_upsample_bilinear2d_aa.h>
#include <torch/version.h>

#if TORCH_VERSION_MAJOR >= 2
#include <ATen/ops/scaled_dot_product_attention.h>
#endif

#include <cmath>
#include <limits>
#include <vector>

using tb::T;

namespace {

at::Tensor unary(int op, const at::Tensor& x) {
  switch (op) {
    case TB_NEG: return x.neg();
    case TB_EXP: return x.exp();
    case TB_LOG: return x.log();
    case TB_SQRT: return x.sqrt();
    case TB_RSQRT: return x.rsqrt();
    case TB_ABS: return x.abs();
    case TB_SIGMOID: return x.sigmoid();
    case TB_LOGSIGMOID: return at::log_sigmoid(x);
    case TB_TANH: return x.tanh();
    case TB_RELU: return x.relu();
    case TB_GELU: return at::gelu(x, "none");
    case TB_GELU_TANH: return at::gelu(x, "tanh");
    case TB_SIN: return x.sin();
    case TB_COS: return x.cos();
    case TB_SQUARE: return x.square();
    case TB_ERF: return x.erf();
    case TB_FLOOR: return x.floor();
    case TB_CEIL: return x.ceil();
    case TB_ROUND: return x.round();
    case TB_LOGICAL_NOT: return at::logical_not(x);
    case TB_CONTIGUOUS: return x.contiguous();
    case TB_CLONE: return x.clone();
    case TB_DETACH: return x.detach();
    case TB_ISNAN: return x.isnan();
    case TB_ISFINITE: return x.isfinite();
  }
  throw tb::ArgumentError("unknown unary op " + std::to_string(op));
}

at::Tensor binary(int op, const at::Tensor& a, const at::Tensor& b) {
  switch (op) {
    case TB_ADD: return a.add(b);
    case TB_SUB: return a.sub(b);
    case TB_MUL: return a.mul(b);
    case TB_DIV: return a.div(b);
    case TB_POW: return a.pow(b);
    case TB_MAXIMUM: return at::maximum(a, b);
    case TB_MINIMUM: return at::minimum(a, b);
    case TB_EQ: return a.eq(b);
    case TB_NE: return a.ne(b);
    case TB_LT: return a.lt(b);
    case TB_LE: return a.le(b);
    case TB_GT: return a.gt(b);
    case TB_GE: return a.ge(b);
    case TB_LOGICAL_AND: return at::logical_and(a, b);
    case TB_LOGICAL_OR: return at::logical_or(a, b);
    case TB_MATMUL: return at::matmul(a, b);
    case TB_RSUB: return b.sub(a);
    case TB_RDIV: return b.div(a);
    case TB_RPOW: return b.pow(a);
  }
  throw tb::ArgumentError("unknown binary op " + std::to_string(op));
}

at::Tensor binary_scalar(int op, const at::Tensor& a, const at::Scalar& s) {
  switch (op) {
    case TB_ADD: return a.add(s);
    case TB_SUB: return a.sub(s);
    case TB_MUL: return a.mul(s);
    case TB_DIV: return a.div(s);
    case TB_POW: return a.pow(s);
    case TB_MAXIMUM: return a.clamp_min(s);
    case TB_MINIMUM: return a.clamp_max(s);
    case TB_EQ: return a.eq(s);
    case TB_NE: return a.ne(s);
    case TB_LT: return a.lt(s);
    case TB_LE: return a.le(s);
    case TB_GT: return a.gt(s);
    case TB_GE: return a.ge(s);
    case TB_RSUB: return a.neg().add(s);
    case TB_RDIV: return a.reciprocal().mul(s);
    case TB_RPOW: return at::pow(s, a);
  }
  throw tb::ArgumentError("binary op " + std::to_string(op) + " has no scalar form");
}

std::vector<int64_t> vec(const int64_t* p, int n) {
  auto r = tb::dims(p, n);
  return std::vector<int64_t>(r.begin(), r.end());
}

at::Tensor attention_math(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                          const c10::optional<at::Tensor>& mask, bool causal, double scale) {
  // Scaling q (L×d) is cheaper than scaling the scores (L×S).
  at::Tensor s = at::matmul(q.mul(scale), k.transpose(-2, -1));
  if (causal) {
    int64_t L = q.size(-2), S = k.size(-2);
    at::Tensor keep = at::ones({L, S}, q.options().dtype(at::kBool)).tril();
    s = s.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  }
  if (mask.has_value()) {
    const at::Tensor& m = *mask;
    if (m.scalar_type() == at::kBool)
      s = s.masked_fill(m.logical_not(), -std::numeric_limits<double>::infinity());
    else
      s = s.add(m);
  }
  return at::matmul(at::softmax(s, -1), v);
}

}  // namespace

extern "C" {

tb_error* tb_unary(int op, const tb_tensor* x, tb_tensor** out) { TB_OUT(unary(op, T(x))) }

tb_error* tb_binary(int op, const tb_tensor* a, const tb_tensor* b, tb_tensor** out) {
  TB_OUT(binary(op, T(a), T(b)))
}

tb_error* tb_binary_scalar(int op, const tb_tensor* a, double s, tb_tensor** out) {
  TB_OUT(binary_scalar(op, T(a), at::Scalar(s)))
}

tb_error* tb_leaky_relu(const tb_tensor* x, double slope, tb_tensor** out) {
  TB_OUT(at::leaky_relu(T(x), slope))
}

tb_error* tb_clamp(const tb_tensor* x, int has_lo, double lo, int has_hi, double hi,
                   tb_tensor** out) {
  TB_TRY
  if (!has_lo && !has_hi) throw tb::ArgumentError("clamp needs a lower or an upper bound");
  c10::optional<at::Scalar> l, h;
  if (has_lo) l = lo;
  if (has_hi) h = hi;
  *out = tb::wrap(at::clamp(T(x), l, h));
  TB_CATCH
}

tb_error* tb_where(const tb_tensor* c, const tb_tensor* a, const tb_tensor* b, tb_tensor** out) {
  TB_OUT(at::where(T(c), T(a), T(b)))
}

/* ---- shape ---- */
tb_error* tb_reshape(const tb_tensor* x, const int64_t* shape, int n, int view, tb_tensor** out) {
  TB_OUT(view ? T(x).view(tb::dims(shape, n)) : T(x).reshape(tb::dims(shape, n)))
}

tb_error* tb_permute(const tb_tensor* x, const int64_t* d, int n, tb_tensor** out) {
  TB_OUT(T(x).permute(tb::dims(d, n)))
}

tb_error* tb_transpose(const tb_tensor* x, int64_t d0, int64_t d1, tb_tensor** out) {
  TB_OUT(T(x).transpose(d0, d1))
}

tb_error* tb_narrow(const tb_tensor* x, int64_t dim, int64_t start, int64_t length,
                    tb_tensor** out) {
  TB_OUT(T(x).narrow(dim, start, length))
}

tb_error* tb_select(const tb_tensor* x, int64_t dim, int64_t index, tb_tensor** out) {
  TB_OUT(T(x).select(dim, index))
}

tb_error* tb_index_select(const tb_tensor* x, int64_t dim, const tb_tensor* index,
                          tb_tensor** out) {
  TB_OUT(T(x).index_select(dim, T(index)))
}

tb_error* tb_cat(const tb_tensor* const* xs, int n, int64_t dim, int stack, tb_tensor** out) {
  TB_TRY
  if (n <= 0 || xs == nullptr) throw tb::ArgumentError("cat/stack of no tensors");
  std::vector<at::Tensor> ts;
  ts.reserve(n);
  for (int i = 0; i < n; i++) ts.push_back(T(xs[i]));
  *out = tb::wrap(stack ? at::stack(ts, dim) : at::cat(ts, dim));
  TB_CATCH
}

tb_error* tb_expand(const tb_tensor* x, const int64_t* shape, int n, tb_tensor** out) {
  TB_OUT(T(x).expand(tb::dims(shape, n)))
}

tb_error* tb_unsqueeze(const tb_tensor* x, int64_t dim, tb_tensor** out) {
  TB_OUT(T(x).unsqueeze(dim))
}

tb_error* tb_squeeze(const tb_tensor* x, int64_t dim, tb_tensor** out) {
  TB_OUT(T(x).squeeze(dim))
}

tb_error* tb_flatten(const tb_tensor* x, int64_t start, int64_t end, tb_tensor** out) {
  TB_OUT(T(x).flatten(start, end))
}

/* ---- reductions ---- */
tb_error* tb_reduce(int op, const tb_tensor* x, const int64_t* d, int n, int keepdim,
                    tb_tensor** out) {
  TB_TRY
  const at::Tensor& t = T(x);
  auto ds = tb::dims(d, n);
  bool all = n == 0;
  at::Tensor r;
  switch (op) {
    case TB_SUM: r = all ? t.sum() : t.sum(ds, keepdim != 0); break;
    case TB_MEAN: r = all ? t.mean() : t.mean(ds, keepdim != 0); break;
    case TB_AMAX: r = at::amax(t, ds, keepdim != 0); break;
    case TB_AMIN: r = at::amin(t, ds, keepdim != 0); break;
    case TB_PROD:
      if (all) {
        r = t.prod();
      } else {
        if (n != 1) throw tb::ArgumentError("prod reduces over one dimension at a time");
        r = t.prod(ds[0], keepdim != 0);
      }
      break;
    default: throw tb::ArgumentError("unknown reduction " + std::to_string(op));
  }
  *out = tb::wrap(std::move(r));
  TB_CATCH
}

tb_error* tb_max_dim(const tb_tensor* x, int64_t dim, int keepdim, int min, tb_tensor** values,
                     tb_tensor** indices) {
  TB_TRY
  auto r = min ? T(x).min(dim, keepdim != 0) : T(x).max(dim, keepdim != 0);
  tb_tensor* v = tb::wrap(std::get<0>(r));
  *indices = tb::wrap(std::get<1>(r));
  *values = v;
  TB_CATCH
}

tb_error* tb_argmax(const tb_tensor* x, int64_t dim, int keepdim, tb_tensor** out) {
  TB_OUT(at::argmax(T(x), dim, keepdim != 0))
}

tb_error* tb_norm(const tb_tensor* x, double p, const int64_t* d, int n, int keepdim,
                  tb_tensor** out) {
  TB_TRY
  const at::Tensor& t = T(x);
  if (n == 0) {
    *out = tb::wrap(at::norm(t, at::Scalar(p)));
  } else {
    *out = tb::wrap(at::norm(t, c10::optional<at::Scalar>(p), tb::dims(d, n), keepdim != 0));
  }
  TB_CATCH
}

tb_error* tb_l2_normalize(const tb_tensor* x, int64_t dim, double eps, tb_tensor** out) {
  TB_TRY
  const at::Tensor& t = T(x);
  at::Tensor denom = at::norm(t, c10::optional<at::Scalar>(2.0), {dim}, true).clamp_min(eps);
  *out = tb::wrap(t.div(denom.expand_as(t)));
  TB_CATCH
}

/* ---- neural-network ops ---- */
tb_error* tb_linear(const tb_tensor* x, const tb_tensor* w, const tb_tensor* b, tb_tensor** out) {
  TB_OUT(at::linear(T(x), T(w), tb::opt(b)))
}

tb_error* tb_conv2d(const tb_tensor* x, const tb_tensor* w, const tb_tensor* b,
                    const int64_t* stride, const int64_t* padding, const int64_t* dilation,
                    int64_t groups, tb_tensor** out) {
  TB_OUT(at::conv2d(T(x), T(w), tb::opt(b), tb::dims(stride, 2), tb::dims(padding, 2),
                    tb::dims(dilation, 2), groups))
}

tb_error* tb_layer_norm(const tb_tensor* x, const int64_t* shape, int n, const tb_tensor* w,
                        const tb_tensor* b, double eps, tb_tensor** out) {
  TB_OUT(at::layer_norm(T(x), tb::dims(shape, n), tb::opt(w), tb::opt(b), eps))
}

tb_error* tb_softmax(const tb_tensor* x, int64_t dim, int log, tb_tensor** out) {
  TB_OUT(log ? at::log_softmax(T(x), dim) : at::softmax(T(x), dim))
}

tb_error* tb_interpolate(const tb_tensor* x, int mode, int64_t out_h, int64_t out_w,
                         int align_corners, int antialias, tb_tensor** out) {
  TB_TRY
  const at::Tensor& t = T(x);
  if (t.dim() != 4) throw tb::ArgumentError("interpolate expects a 4-D [N,C,H,W] tensor");
  if (out_h <= 0 || out_w <= 0) throw tb::ArgumentError("interpolate needs a positive size");
  std::vector<int64_t> sz{out_h, out_w};
  bool ac = align_corners != 0;
  at::Tensor r;
  switch (mode) {
    case TB_NEAREST:
      if (ac || antialias) throw tb::ArgumentError("nearest takes no align_corners/antialias");
      r = at::upsample_nearest2d(t, sz, c10::nullopt, c10::nullopt);
      break;
    case TB_BILINEAR:
      r = antialias ? at::_upsample_bilinear2d_aa(t, sz, ac, c10::nullopt, c10::nullopt)
                    : at::upsample_bilinear2d(t, sz, ac, c10::nullopt, c10::nullopt);
      break;
    case TB_BICUBIC:
      r = antialias ? at::_upsample_bicubic2d_aa(t, sz, ac, c10::nullopt, c10::nullopt)
                    : at::upsample_bicubic2d(t, sz, ac, c10::nullopt, c10::nullopt);
      break;
    default: throw tb::ArgumentError("unknown interpolation mode " + std::to_string(mode));
  }
  *out = tb::wrap(std::move(r));
  TB_CATCH
}

tb_error* tb_grid_sample(const tb_tensor* x, const tb_tensor* grid, int mode, int padding,
                         int align_corners, tb_tensor** out) {
  TB_TRY
  // grid_sampler's interpolation codes: 0 bilinear, 1 nearest, 2 bicubic.
  int64_t m;
  switch (mode) {
    case TB_BILINEAR: m = 0; break;
    case TB_NEAREST: m = 1; break;
    case TB_BICUBIC: m = 2; break;
    default: throw tb::ArgumentError("unknown grid_sample mode");
  }
  if (padding < TB_PAD_ZEROS || padding > TB_PAD_REFLECTION)
    throw tb::ArgumentError("unknown grid_sample padding");
  *out = tb::wrap(at::grid_sampler(T(x), T(grid), m, padding, align_corners != 0));
  TB_CATCH
}

tb_error* tb_affine_grid(const tb_tensor* theta, const int64_t* size, int n, int align_corners,
                         tb_tensor** out) {
  TB_TRY
  if (n != 4) throw tb::ArgumentError("affine_grid takes a 4-D size [N,C,H,W]");
  *out = tb::wrap(at::affine_grid_generator(T(theta), tb::dims(size, n), align_corners != 0));
  TB_CATCH
}

tb_error* tb_attention(const tb_tensor* q, const tb_tensor* k, const tb_tensor* v,
                       const tb_tensor* mask, int causal, double scale, tb_tensor** out) {
  TB_TRY
  const at::Tensor& Q = T(q);
  const at::Tensor& K = T(k);
  const at::Tensor& V = T(v);
  if (Q.dim() < 2 || K.dim() < 2 || V.dim() < 2)
    throw tb::ArgumentError("attention inputs need at least 2 dimensions");
  double sc = scale > 0 ? scale : 1.0 / std::sqrt(static_cast<double>(Q.size(-1)));
  auto m = tb::opt(mask);
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
  bool is_causal = causal != 0;
  if (is_causal && m.has_value()) {
    // The fused kernel takes a mask or is_causal, not both: fold the causal
    // part into the mask, as the step-by-step path applies both.
    at::Tensor keep = at::ones({Q.size(-2), K.size(-2)}, Q.options().dtype(at::kBool)).tril();
    if (m->scalar_type() == at::kBool)
      m = m->logical_and(keep);
    else
      m = m->masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
    is_causal = false;
  }
  *out = tb::wrap(at::scaled_dot_product_attention(Q, K, V, m, 0.0, is_causal, sc));
#else
  *out = tb::wrap(attention_math(Q, K, V, m, causal != 0, sc));
#endif
  TB_CATCH
}

tb_error* tb_embedding(const tb_tensor* weight, const tb_tensor* ids, tb_tensor** out) {
  TB_OUT(at::embedding(T(weight), T(ids)))
}

}  // extern "C"
