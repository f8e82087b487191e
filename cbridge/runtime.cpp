// runtime.cpp — errors, runtime information, thread-local modes, handles,
// creation and host copies, autograd and Adam.
#include "internal.h"

#include <malloc.h>

#include <cstdlib>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/full.h>
#include <ATen/ops/ones.h>
#include <ATen/ops/rand.h>
#include <ATen/ops/randn.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/GradMode.h>
#include <c10/core/Stream.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/version.h>

#include <cstdlib>
#include <vector>

namespace {

// CPU tensors are allocated by glibc's malloc. By default it maps every
// block over 32 MB afresh (and returns it at free), so a transformer's large
// activations, freed and allocated again at every block, fault their pages in
// each time: on a ViT-L/14 forward over 8 images that doubled the time.
// Raising the thresholds keeps such blocks in the heap for reuse; the peak
// memory is the same. A user's own MALLOC_MMAP_THRESHOLD_ takes precedence.
const bool malloc_tuned = [] {
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") != nullptr) return false;
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return true;
}();

}  // namespace

namespace tb {

std::atomic<int64_t> live_tensors{0};

tb_error* make_error(int kind, const std::string& msg) {
  return new (std::nothrow) tb_error{kind, msg};
}

namespace {

// Drops libtorch's "Exception raised from ..." trailer and trailing blanks.
std::string clean(const char* what) {
  std::string s(what ? what : "");
  auto pos = s.find("\nException raised from");
  if (pos != std::string::npos) s.erase(pos);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

bool looks_like_oom(const std::string& s) {
  return s.find("out of memory") != std::string::npos ||
         s.find("can't allocate memory") != std::string::npos ||
         s.find("Out of memory") != std::string::npos;
}

}  // namespace

tb_error* current_exception() {
  try {
    throw;
  } catch (const c10::OutOfMemoryError& e) {
    return make_error(TB_ERR_OOM, clean(e.what_without_backtrace()));
  } catch (const c10::IndexError& e) {
    return make_error(TB_ERR_INDEX, clean(e.what_without_backtrace()));
  } catch (const c10::ValueError& e) {
    return make_error(TB_ERR_VALUE, clean(e.what_without_backtrace()));
  } catch (const c10::TypeError& e) {
    return make_error(TB_ERR_TYPE, clean(e.what_without_backtrace()));
  } catch (const c10::NotImplementedError& e) {
    return make_error(TB_ERR_NOT_IMPLEMENTED, clean(e.what_without_backtrace()));
  } catch (const c10::Error& e) {
    std::string m = clean(e.what_without_backtrace());
    return make_error(looks_like_oom(m) ? TB_ERR_OOM : TB_ERR_TORCH, m);
  } catch (const ArgumentError& e) {
    return make_error(TB_ERR_ARGUMENT, e.msg);
  } catch (const std::bad_alloc&) {
    return make_error(TB_ERR_OOM, "out of memory (std::bad_alloc)");
  } catch (const std::exception& e) {
    std::string m = clean(e.what());
    return make_error(looks_like_oom(m) ? TB_ERR_OOM : TB_ERR_UNKNOWN, m);
  } catch (...) {
    return make_error(TB_ERR_UNKNOWN, "unknown C++ exception");
  }
}

at::ScalarType to_scalar_type(int dtype) {
  switch (dtype) {
    case TB_F32: return at::kFloat;
    case TB_F64: return at::kDouble;
    case TB_F16: return at::kHalf;
    case TB_BF16: return at::kBFloat16;
    case TB_I64: return at::kLong;
    case TB_I32: return at::kInt;
    case TB_BOOL: return at::kBool;
    case TB_U8: return at::kByte;
  }
  throw ArgumentError("unknown dtype code " + std::to_string(dtype));
}

int from_scalar_type(at::ScalarType st) {
  switch (st) {
    case at::kFloat: return TB_F32;
    case at::kDouble: return TB_F64;
    case at::kHalf: return TB_F16;
    case at::kBFloat16: return TB_BF16;
    case at::kLong: return TB_I64;
    case at::kInt: return TB_I32;
    case at::kBool: return TB_BOOL;
    case at::kByte: return TB_U8;
    default: break;
  }
  throw ArgumentError(std::string("unsupported scalar type ") + c10::toString(st));
}

at::Device to_device(int device_type, int device_index) {
  switch (device_type) {
    case TB_CPU: return at::Device(at::kCPU);
    case TB_CUDA:
      if (device_index < 0) throw ArgumentError("negative CUDA device index");
      return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index));
  }
  throw ArgumentError("unknown device type " + std::to_string(device_type));
}

at::IntArrayRef dims(const int64_t* p, int n) {
  if (n < 0) throw ArgumentError("negative dimension count");
  if (n > 0 && p == nullptr) throw ArgumentError("null dimension list");
  return at::IntArrayRef(p, static_cast<size_t>(n));
}

}  // namespace tb

struct tb_generator {
  at::Generator g;
};

struct tb_adam {
  std::vector<at::Tensor> params, m, v;
  double lr, beta1, beta2, eps, weight_decay;
  int64_t steps = 0;
};

using tb::T;

extern "C" {

/* ---- errors ---- */
int tb_error_kind(const tb_error* e) { return e ? e->kind : 0; }
const char* tb_error_message(const tb_error* e) { return e ? e->message.c_str() : ""; }
void tb_error_free(tb_error* e) { delete e; }

/* ---- runtime ---- */
const char* tb_torch_version(void) { return TORCH_VERSION; }

tb_error* tb_build_config(char** out) {
  TB_TRY
  std::string s = at::show_config();
  char* c = static_cast<char*>(std::malloc(s.size() + 1));
  if (!c) throw std::bad_alloc();
  std::memcpy(c, s.c_str(), s.size() + 1);
  *out = c;
  TB_CATCH
}

void tb_string_free(char* s) { std::free(s); }

int64_t tb_live_tensors(void) { return tb::live_tensors.load(); }

int tb_cuda_device_count(void) {
  try {
    if (!at::detail::getCUDAHooks().hasCUDA()) return 0;
    return at::detail::getCUDAHooks().getNumGPUs();
  } catch (...) {
    return 0;
  }
}

tb_error* tb_manual_seed(uint64_t seed) {
  TB_TRY
  at::manual_seed(seed);
  TB_CATCH
}

int tb_get_num_threads(void) {
  try { return at::get_num_threads(); } catch (...) { return 0; }
}

tb_error* tb_set_num_threads(int n) {
  TB_TRY
  if (n < 1) throw tb::ArgumentError("thread count must be at least 1");
  at::set_num_threads(n);
  TB_CATCH
}

tb_error* tb_synchronize(int device_type, int device_index) {
  TB_TRY
  at::Device d = tb::to_device(device_type, device_index);
  if (d.is_cpu()) return nullptr;
  c10::impl::VirtualGuardImpl impl(d.type());
  c10::Stream s = impl.getStream(d);
  s.synchronize();
  TB_CATCH
}

tb_error* tb_set_current_device(int device_type, int device_index) {
  TB_TRY
  at::Device d = tb::to_device(device_type, device_index);
  if (d.is_cpu()) return nullptr;
  c10::impl::VirtualGuardImpl impl(d.type());
  impl.setDevice(d);
  TB_CATCH
}

/* ---- modes ---- */
int tb_grad_enabled(void) { return c10::GradMode::is_enabled() ? 1 : 0; }
void tb_set_grad_enabled(int enabled) { c10::GradMode::set_enabled(enabled != 0); }

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define TB_AUTOCAST_BY_DEVICE 1
#endif

static bool autocast_is_enabled(at::DeviceType d) {
#ifdef TB_AUTOCAST_BY_DEVICE
  return at::autocast::is_autocast_enabled(d);
#else
  return d == at::kCUDA ? at::autocast::is_enabled() : at::autocast::is_cpu_enabled();
#endif
}

static at::ScalarType autocast_dtype(at::DeviceType d) {
#ifdef TB_AUTOCAST_BY_DEVICE
  return at::autocast::get_autocast_dtype(d);
#else
  return d == at::kCUDA ? at::autocast::get_autocast_gpu_dtype()
                        : at::autocast::get_autocast_cpu_dtype();
#endif
}

static void autocast_set(at::DeviceType d, bool on, at::ScalarType st) {
#ifdef TB_AUTOCAST_BY_DEVICE
  at::autocast::set_autocast_enabled(d, on);
  at::autocast::set_autocast_dtype(d, st);
#else
  if (d == at::kCUDA) {
    at::autocast::set_enabled(on);
    at::autocast::set_autocast_gpu_dtype(st);
  } else {
    at::autocast::set_cpu_enabled(on);
    at::autocast::set_autocast_cpu_dtype(st);
  }
#endif
}

static at::DeviceType autocast_device(int device_type) {
  if (device_type == TB_CPU) return at::kCPU;
  if (device_type == TB_CUDA) return at::kCUDA;
  throw tb::ArgumentError("unknown device type " + std::to_string(device_type));
}

tb_error* tb_autocast_enter(int device_type, int dtype, int* prev_enabled, int* prev_dtype) {
  TB_TRY
  at::DeviceType d = autocast_device(device_type);
  at::ScalarType st = tb::to_scalar_type(dtype);
  if (st != at::kBFloat16 && st != at::kHalf)
    throw tb::ArgumentError("autocast dtype must be bf16 or f16");
  *prev_enabled = autocast_is_enabled(d) ? 1 : 0;
  *prev_dtype = tb::from_scalar_type(autocast_dtype(d));
  autocast_set(d, true, st);
  at::autocast::increment_nesting();
  TB_CATCH
}

tb_error* tb_autocast_exit(int device_type, int prev_enabled, int prev_dtype) {
  TB_TRY
  at::DeviceType d = autocast_device(device_type);
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  autocast_set(d, prev_enabled != 0, tb::to_scalar_type(prev_dtype));
  TB_CATCH
}

int tb_autocast_enabled(int device_type) {
  try { return autocast_is_enabled(autocast_device(device_type)) ? 1 : 0; } catch (...) { return 0; }
}

/* ---- generators ---- */
tb_error* tb_generator_new(uint64_t seed, tb_generator** out) {
  TB_TRY
  *out = new tb_generator{at::make_generator<at::CPUGeneratorImpl>(seed)};
  TB_CATCH
}

void tb_generator_free(tb_generator* g) { delete g; }

/* ---- handles ---- */
void tb_free(tb_tensor* t) {
  if (t == nullptr) return;
  try {
    delete t;
  } catch (...) {
  }
  tb::live_tensors.fetch_sub(1, std::memory_order_relaxed);
}

tb_error* tb_get_info(const tb_tensor* h, tb_info* out) {
  TB_TRY
  const at::Tensor& t = T(h);
  if (!t.defined()) throw tb::ArgumentError("undefined tensor");
  if (t.dim() > TB_MAX_DIMS) throw tb::ArgumentError("tensor has more than 16 dimensions");
  out->dtype = tb::from_scalar_type(t.scalar_type());
  at::Device d = t.device();
  out->device_type = d.is_cuda() ? TB_CUDA : TB_CPU;
  out->device_index = d.has_index() ? d.index() : 0;
  out->ndim = static_cast<int>(t.dim());
  out->requires_grad = t.requires_grad() ? 1 : 0;
  out->is_leaf = t.is_leaf() ? 1 : 0;
  out->numel = t.numel();
  for (int i = 0; i < out->ndim; i++) out->shape[i] = t.size(i);
  TB_CATCH
}

/* ---- creation ---- */
static at::TensorOptions options(int dtype, int device_type, int device_index) {
  return at::TensorOptions()
      .dtype(tb::to_scalar_type(dtype))
      .device(tb::to_device(device_type, device_index));
}

tb_error* tb_new_filled(int kind, const int64_t* shape, int ndim, double value, int dtype,
                        int device_type, int device_index, tb_tensor** out) {
  TB_TRY
  auto sz = tb::dims(shape, ndim);
  auto o = options(dtype, device_type, device_index);
  at::Tensor t;
  switch (kind) {
    case 0: t = at::empty(sz, o); break;
    case 1: t = at::zeros(sz, o); break;
    case 2: t = at::ones(sz, o); break;
    case 3: t = at::full(sz, value, o); break;
    default: throw tb::ArgumentError("unknown fill kind");
  }
  *out = tb::wrap(std::move(t));
  TB_CATCH
}

tb_error* tb_arange(double start, double end, double step, int dtype, int device_type,
                    int device_index, tb_tensor** out) {
  TB_OUT(at::arange(start, end, step, options(dtype, device_type, device_index)))
}

tb_error* tb_random(int normal, const int64_t* shape, int ndim, int dtype, int device_type,
                    int device_index, tb_generator* g, tb_tensor** out) {
  TB_TRY
  auto sz = tb::dims(shape, ndim);
  auto o = options(dtype, device_type, device_index);
  c10::optional<at::Generator> gen;
  at::TensorOptions draw = o;
  if (g != nullptr) {
    gen = g->g;
    draw = o.device(at::kCPU);  // a CPU generator draws on the CPU
  }
  at::Tensor t = normal ? at::randn(sz, gen, draw) : at::rand(sz, gen, draw);
  if (g != nullptr) t = t.to(o.device());
  *out = tb::wrap(std::move(t));
  TB_CATCH
}

tb_error* tb_from_host(const void* data, size_t nbytes, const int64_t* shape, int ndim,
                       int src_dtype, int dtype, int device_type, int device_index,
                       tb_tensor** out) {
  TB_TRY
  auto sz = tb::dims(shape, ndim);
  at::ScalarType src = tb::to_scalar_type(src_dtype);
  int64_t numel = 1;
  for (auto s : sz) {
    if (s < 0) throw tb::ArgumentError("negative dimension");
    numel *= s;
  }
  size_t want = static_cast<size_t>(numel) * c10::elementSize(src);
  if (want != nbytes)
    throw tb::ArgumentError("host buffer has " + std::to_string(nbytes) + " bytes, shape needs " +
                            std::to_string(want));
  at::Device dev = tb::to_device(device_type, device_index);
  at::ScalarType dst = tb::to_scalar_type(dtype);
  if (nbytes == 0) {
    *out = tb::wrap(at::empty(sz, at::TensorOptions().dtype(dst).device(dev)));
  } else {
    if (data == nullptr) throw tb::ArgumentError("null host buffer");
    // The caller's buffer is read in place and copied once, straight into
    // the tensor's dtype and device: no staging tensor in the source dtype,
    // whose freed blocks would fragment the heap when gigabytes of fp16
    // weights load as fp32. copy=true: the result never aliases the buffer.
    at::Tensor view = at::from_blob(const_cast<void*>(data), sz, at::TensorOptions().dtype(src));
    *out = tb::wrap(view.to(dev, dst, /*non_blocking=*/false, /*copy=*/true));
  }
  TB_CATCH
}

tb_error* tb_to_host(const tb_tensor* h, int dtype, void* dst, size_t nbytes) {
  TB_TRY
  at::Tensor c = T(h).detach().to(at::kCPU, tb::to_scalar_type(dtype)).contiguous();
  size_t have = static_cast<size_t>(c.numel()) * c.element_size();
  if (have != nbytes)
    throw tb::ArgumentError("tensor has " + std::to_string(have) + " bytes, buffer " +
                            std::to_string(nbytes));
  if (nbytes > 0) std::memcpy(dst, c.data_ptr(), nbytes);
  TB_CATCH
}

tb_error* tb_item(const tb_tensor* h, double* out) {
  TB_TRY
  *out = T(h).item().toDouble();
  TB_CATCH
}

tb_error* tb_to(const tb_tensor* h, int dtype, int device_type, int device_index, tb_tensor** out) {
  TB_OUT(T(h).to(tb::to_device(device_type, device_index), tb::to_scalar_type(dtype)))
}

/* ---- autograd ---- */
tb_error* tb_set_requires_grad(tb_tensor* h, int flag) {
  TB_TRY
  if (h == nullptr) throw tb::ArgumentError("null tensor handle");
  h->t.set_requires_grad(flag != 0);
  TB_CATCH
}

tb_error* tb_backward(const tb_tensor* h, const tb_tensor* grad, int retain_graph) {
  TB_TRY
  const at::Tensor& t = T(h);
  c10::optional<at::Tensor> g = tb::opt(grad);
  if (!g.has_value() && t.numel() != 1)
    throw tb::ArgumentError("backward without a seed gradient needs a scalar, got " +
                            std::to_string(t.numel()) + " elements");
  t.backward(g.has_value() ? *g : at::Tensor(), retain_graph != 0 ? c10::optional<bool>(true)
                                                                    : c10::optional<bool>());
  TB_CATCH
}

tb_error* tb_grad(const tb_tensor* h, tb_tensor** out) {
  TB_TRY
  const at::Tensor& g = T(h).grad();
  *out = g.defined() ? tb::wrap(g) : nullptr;
  TB_CATCH
}

tb_error* tb_zero_grad(tb_tensor* h) {
  TB_TRY
  if (h == nullptr) throw tb::ArgumentError("null tensor handle");
  h->t.mutable_grad() = at::Tensor();
  TB_CATCH
}

/* ---- in place ---- */
tb_error* tb_copy_(tb_tensor* dst, const tb_tensor* src) {
  TB_TRY
  if (dst == nullptr) throw tb::ArgumentError("null tensor handle");
  at::NoGradGuard ng;
  dst->t.copy_(T(src));
  TB_CATCH
}

tb_error* tb_fill_(tb_tensor* dst, double value) {
  TB_TRY
  if (dst == nullptr) throw tb::ArgumentError("null tensor handle");
  at::NoGradGuard ng;
  dst->t.fill_(value);
  TB_CATCH
}

/* ---- Adam ---- */
tb_error* tb_adam_new(tb_tensor* const* params, int n, double lr, double beta1, double beta2,
                      double eps, double weight_decay, tb_adam** out) {
  TB_TRY
  if (n < 0 || (n > 0 && params == nullptr)) throw tb::ArgumentError("bad parameter list");
  if (!(lr >= 0)) throw tb::ArgumentError("learning rate must be >= 0");
  if (!(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1))
    throw tb::ArgumentError("betas must lie in [0, 1)");
  if (!(eps >= 0)) throw tb::ArgumentError("eps must be >= 0");
  auto* a = new tb_adam();
  a->lr = lr; a->beta1 = beta1; a->beta2 = beta2; a->eps = eps; a->weight_decay = weight_decay;
  for (int i = 0; i < n; i++) {
    const at::Tensor& p = T(params[i]);
    if (!p.is_floating_point()) {
      delete a;
      throw tb::ArgumentError("parameter " + std::to_string(i) + " is not floating point");
    }
    a->params.push_back(p);
    a->m.emplace_back();
    a->v.emplace_back();
  }
  *out = a;
  TB_CATCH
}

void tb_adam_free(tb_adam* a) {
  try { delete a; } catch (...) {}
}

tb_error* tb_adam_step(tb_adam* a) {
  TB_TRY
  at::NoGradGuard ng;
  a->steps++;
  const double bc1 = 1.0 - std::pow(a->beta1, static_cast<double>(a->steps));
  const double bc2 = 1.0 - std::pow(a->beta2, static_cast<double>(a->steps));
  const double step_size = a->lr / bc1;
  const double bc2_sqrt = std::sqrt(bc2);
  for (size_t i = 0; i < a->params.size(); i++) {
    at::Tensor& p = a->params[i];
    const at::Tensor& g0 = p.grad();
    if (!g0.defined()) continue;
    at::Tensor g = g0;
    if (a->weight_decay != 0) g = g.add(p, a->weight_decay);
    if (!a->m[i].defined()) {
      a->m[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
      a->v[i] = at::zeros_like(p, at::MemoryFormat::Preserve);
    }
    a->m[i].mul_(a->beta1).add_(g, 1.0 - a->beta1);
    a->v[i].mul_(a->beta2).addcmul_(g, g, 1.0 - a->beta2);
    at::Tensor denom = a->v[i].sqrt().div_(bc2_sqrt).add_(a->eps);
    p.addcdiv_(a->m[i], denom, -step_size);
  }
  TB_CATCH
}

tb_error* tb_adam_zero_grad(tb_adam* a) {
  TB_TRY
  for (auto& p : a->params) p.mutable_grad() = at::Tensor();
  TB_CATCH
}

void tb_adam_set_lr(tb_adam* a, double lr) { a->lr = lr; }
int64_t tb_adam_steps(const tb_adam* a) { return a->steps; }

tb_error* tb_adam_get_state(const tb_adam* a, int i, tb_tensor** m, tb_tensor** v) {
  TB_TRY
  if (i < 0 || static_cast<size_t>(i) >= a->params.size())
    throw tb::ArgumentError("parameter index out of range");
  *m = a->m[i].defined() ? tb::wrap(a->m[i].detach().clone()) : nullptr;
  *v = a->v[i].defined() ? tb::wrap(a->v[i].detach().clone()) : nullptr;
  TB_CATCH
}

tb_error* tb_adam_set_state(tb_adam* a, int64_t steps, int i, const tb_tensor* m,
                            const tb_tensor* v) {
  TB_TRY
  if (i < 0 || static_cast<size_t>(i) >= a->params.size())
    throw tb::ArgumentError("parameter index out of range");
  if (steps < 0) throw tb::ArgumentError("negative step count");
  const at::Tensor& p = a->params[i];
  const at::Tensor& mt = T(m);
  const at::Tensor& vt = T(v);
  if (!mt.sizes().equals(p.sizes()) || !vt.sizes().equals(p.sizes()))
    throw tb::ArgumentError("moment shape does not match parameter " + std::to_string(i));
  a->m[i] = mt.detach().to(p.device(), p.scalar_type()).clone();
  a->v[i] = vt.detach().to(p.device(), p.scalar_type()).clone();
  a->steps = steps;
  TB_CATCH
}

}  // extern "C"
