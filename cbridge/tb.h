/*
 * tb.h — the C ABI between madclip's Go code and libtorch.
 *
 * Rules (the bridge's contract; docs/design.md places the bridge among the layers):
 *  - Handles are opaque structs; every tensor a call returns is a new reference
 *    owned by the caller, to be released exactly once with tb_free. Arguments
 *    are borrowed.
 *  - Every fallible entry point returns NULL on success or an error object the
 *    caller must release with tb_error_free. Results go to out-params. No C++
 *    exception ever crosses this boundary.
 *  - Grad mode and autocast are thread-local in libtorch: callers keep all
 *    work on one OS thread.
 */
#ifndef MADCLIP_TB_H
#define MADCLIP_TB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tb_tensor tb_tensor;
typedef struct tb_error tb_error;
typedef struct tb_generator tb_generator;
typedef struct tb_adam tb_adam;

#define TB_MAX_DIMS 16

/* Element types, mapped explicitly to at::ScalarType in the C++. */
enum {
  TB_F32 = 0,
  TB_F64 = 1,
  TB_F16 = 2,
  TB_BF16 = 3,
  TB_I64 = 4,
  TB_I32 = 5,
  TB_BOOL = 6,
  TB_U8 = 7,
};

enum { TB_CPU = 0, TB_CUDA = 1 };

/* Error kinds. */
enum {
  TB_ERR_TORCH = 1,          /* any other c10::Error */
  TB_ERR_OOM = 2,            /* out of memory (CPU or GPU) */
  TB_ERR_INDEX = 3,          /* c10::IndexError */
  TB_ERR_VALUE = 4,          /* c10::ValueError */
  TB_ERR_TYPE = 5,           /* c10::TypeError */
  TB_ERR_NOT_IMPLEMENTED = 6,/* c10::NotImplementedError */
  TB_ERR_ARGUMENT = 7,       /* rejected by the bridge itself */
  TB_ERR_UNKNOWN = 8,        /* a non-c10 C++ exception */
};

/* Unary elementwise operations for tb_unary. */
enum {
  TB_NEG = 0, TB_EXP, TB_LOG, TB_SQRT, TB_RSQRT, TB_ABS, TB_SIGMOID,
  TB_LOGSIGMOID, TB_TANH, TB_RELU, TB_GELU, TB_GELU_TANH, TB_SIN, TB_COS,
  TB_SQUARE, TB_ERF, TB_FLOOR, TB_CEIL, TB_ROUND, TB_LOGICAL_NOT,
  TB_CONTIGUOUS, TB_CLONE, TB_DETACH, TB_ISNAN, TB_ISFINITE,
  TB_UNARY_COUNT
};

/* Binary operations for tb_binary and tb_binary_scalar. */
enum {
  TB_ADD = 0, TB_SUB, TB_MUL, TB_DIV, TB_POW, TB_MAXIMUM, TB_MINIMUM,
  TB_EQ, TB_NE, TB_LT, TB_LE, TB_GT, TB_GE, TB_LOGICAL_AND, TB_LOGICAL_OR,
  TB_MATMUL, TB_RSUB, TB_RDIV, TB_RPOW,
  TB_BINARY_COUNT
};

/* Reductions for tb_reduce. */
enum { TB_SUM = 0, TB_MEAN, TB_AMAX, TB_AMIN, TB_PROD, TB_REDUCE_COUNT };

/* Interpolation modes. */
enum { TB_NEAREST = 0, TB_BILINEAR = 1, TB_BICUBIC = 2 };

/* grid_sample padding modes. */
enum { TB_PAD_ZEROS = 0, TB_PAD_BORDER = 1, TB_PAD_REFLECTION = 2 };

/* ---- errors ---- */
int tb_error_kind(const tb_error* e);
const char* tb_error_message(const tb_error* e);
void tb_error_free(tb_error* e);

/* ---- runtime ---- */
const char* tb_torch_version(void);     /* e.g. "1.13.0" (static string) */
tb_error* tb_build_config(char** out);  /* at::show_config(); free with tb_string_free */
void tb_string_free(char* s);
int64_t tb_live_tensors(void);          /* tensor handles not yet freed */
int tb_cuda_device_count(void);
tb_error* tb_manual_seed(uint64_t seed);
int tb_get_num_threads(void);
tb_error* tb_set_num_threads(int n);
tb_error* tb_synchronize(int device_type, int device_index);
/* Makes the device current on the calling thread (a no-op for the CPU). */
tb_error* tb_set_current_device(int device_type, int device_index);

/* ---- thread-local modes ---- */
int tb_grad_enabled(void);
void tb_set_grad_enabled(int enabled);
/* Enters an autocast region for device_type with the given dtype; the previous
 * state is written to prev_enabled / prev_dtype for tb_autocast_exit. */
tb_error* tb_autocast_enter(int device_type, int dtype, int* prev_enabled,
                            int* prev_dtype);
tb_error* tb_autocast_exit(int device_type, int prev_enabled, int prev_dtype);
int tb_autocast_enabled(int device_type);

/* ---- generators ---- */
tb_error* tb_generator_new(uint64_t seed, tb_generator** out);
void tb_generator_free(tb_generator* g);

/* ---- tensor handles and metadata ---- */
void tb_free(tb_tensor* t);
typedef struct {
  int dtype;
  int device_type;
  int device_index;
  int ndim;
  int requires_grad;
  int is_leaf;
  int64_t numel;
  int64_t shape[TB_MAX_DIMS];
} tb_info;
tb_error* tb_get_info(const tb_tensor* t, tb_info* out);

/* ---- creation ---- */
/* kind: 0 empty, 1 zeros, 2 ones, 3 full(value) */
tb_error* tb_new_filled(int kind, const int64_t* shape, int ndim, double value,
                        int dtype, int device_type, int device_index,
                        tb_tensor** out);
tb_error* tb_arange(double start, double end, double step, int dtype,
                    int device_type, int device_index, tb_tensor** out);
/* normal != 0: N(0,1), else U[0,1). g may be NULL (default generator). */
tb_error* tb_random(int normal, const int64_t* shape, int ndim, int dtype,
                    int device_type, int device_index, tb_generator* g,
                    tb_tensor** out);
/* Copies nbytes of host data laid out as src_dtype/shape into a new tensor of
 * dtype on the device. */
tb_error* tb_from_host(const void* data, size_t nbytes, const int64_t* shape,
                       int ndim, int src_dtype, int dtype, int device_type,
                       int device_index, tb_tensor** out);
/* Converts t to dtype on the CPU and copies its nbytes into dst. */
tb_error* tb_to_host(const tb_tensor* t, int dtype, void* dst, size_t nbytes);
tb_error* tb_item(const tb_tensor* t, double* out);
tb_error* tb_to(const tb_tensor* t, int dtype, int device_type,
                int device_index, tb_tensor** out);

/* ---- elementwise ---- */
tb_error* tb_unary(int op, const tb_tensor* x, tb_tensor** out);
tb_error* tb_binary(int op, const tb_tensor* a, const tb_tensor* b,
                    tb_tensor** out);
tb_error* tb_binary_scalar(int op, const tb_tensor* a, double s,
                           tb_tensor** out);
tb_error* tb_leaky_relu(const tb_tensor* x, double slope, tb_tensor** out);
tb_error* tb_clamp(const tb_tensor* x, int has_lo, double lo, int has_hi,
                   double hi, tb_tensor** out);
tb_error* tb_where(const tb_tensor* cond, const tb_tensor* a,
                   const tb_tensor* b, tb_tensor** out);

/* ---- shape ---- */
tb_error* tb_reshape(const tb_tensor* x, const int64_t* shape, int n,
                     int view, tb_tensor** out);
tb_error* tb_permute(const tb_tensor* x, const int64_t* dims, int n,
                     tb_tensor** out);
tb_error* tb_transpose(const tb_tensor* x, int64_t d0, int64_t d1,
                       tb_tensor** out);
tb_error* tb_narrow(const tb_tensor* x, int64_t dim, int64_t start,
                    int64_t length, tb_tensor** out);
tb_error* tb_select(const tb_tensor* x, int64_t dim, int64_t index,
                    tb_tensor** out);
tb_error* tb_index_select(const tb_tensor* x, int64_t dim,
                          const tb_tensor* index, tb_tensor** out);
/* stack != 0: stack along a new dim, else concatenate. */
tb_error* tb_cat(const tb_tensor* const* xs, int n, int64_t dim, int stack,
                 tb_tensor** out);
tb_error* tb_expand(const tb_tensor* x, const int64_t* shape, int n,
                    tb_tensor** out);
tb_error* tb_unsqueeze(const tb_tensor* x, int64_t dim, tb_tensor** out);
tb_error* tb_squeeze(const tb_tensor* x, int64_t dim, tb_tensor** out);
tb_error* tb_flatten(const tb_tensor* x, int64_t start, int64_t end,
                     tb_tensor** out);

/* ---- reductions ---- */
/* n == 0 reduces over all elements. dtype < 0 keeps the default. */
tb_error* tb_reduce(int op, const tb_tensor* x, const int64_t* dims, int n,
                    int keepdim, tb_tensor** out);
/* Max (or min when min != 0) along dim: values and int64 indices. */
tb_error* tb_max_dim(const tb_tensor* x, int64_t dim, int keepdim, int min,
                     tb_tensor** values, tb_tensor** indices);
tb_error* tb_argmax(const tb_tensor* x, int64_t dim, int keepdim,
                    tb_tensor** out);
tb_error* tb_norm(const tb_tensor* x, double p, const int64_t* dims, int n,
                  int keepdim, tb_tensor** out);
/* x / max(||x||_2 along dim, eps), as torch.nn.functional.normalize. */
tb_error* tb_l2_normalize(const tb_tensor* x, int64_t dim, double eps,
                          tb_tensor** out);

/* ---- neural-network ops ---- */
tb_error* tb_linear(const tb_tensor* x, const tb_tensor* w,
                    const tb_tensor* b /* nullable */, tb_tensor** out);
tb_error* tb_conv2d(const tb_tensor* x, const tb_tensor* w,
                    const tb_tensor* b /* nullable */, const int64_t* stride,
                    const int64_t* padding, const int64_t* dilation,
                    int64_t groups, tb_tensor** out);
tb_error* tb_layer_norm(const tb_tensor* x, const int64_t* shape, int n,
                        const tb_tensor* w /* nullable */,
                        const tb_tensor* b /* nullable */, double eps,
                        tb_tensor** out);
tb_error* tb_softmax(const tb_tensor* x, int64_t dim, int log,
                     tb_tensor** out);
tb_error* tb_interpolate(const tb_tensor* x, int mode, int64_t out_h,
                         int64_t out_w, int align_corners, int antialias,
                         tb_tensor** out);
tb_error* tb_grid_sample(const tb_tensor* x, const tb_tensor* grid, int mode,
                         int padding, int align_corners, tb_tensor** out);
tb_error* tb_affine_grid(const tb_tensor* theta, const int64_t* size, int n,
                         int align_corners, tb_tensor** out);
/* softmax(q·kᵀ·scale + mask)·v over the last two dims. mask (nullable) is
 * boolean (true = attend) or additive float; scale <= 0 means 1/sqrt(d). */
tb_error* tb_attention(const tb_tensor* q, const tb_tensor* k,
                       const tb_tensor* v, const tb_tensor* mask, int causal,
                       double scale, tb_tensor** out);
tb_error* tb_embedding(const tb_tensor* weight, const tb_tensor* ids,
                       tb_tensor** out);

/* ---- autograd ---- */
tb_error* tb_set_requires_grad(tb_tensor* t, int flag);
/* grad (nullable) is the seed gradient; NULL requires a scalar t. */
tb_error* tb_backward(const tb_tensor* t, const tb_tensor* grad,
                      int retain_graph);
/* *out is NULL when t has no gradient. */
tb_error* tb_grad(const tb_tensor* t, tb_tensor** out);
tb_error* tb_zero_grad(tb_tensor* t);

/* ---- in place (never recorded by autograd) ---- */
tb_error* tb_copy_(tb_tensor* dst, const tb_tensor* src);
tb_error* tb_fill_(tb_tensor* dst, double value);

/* ---- Adam (torch.optim.Adam semantics, L2 weight decay) ---- */
tb_error* tb_adam_new(tb_tensor* const* params, int n, double lr,
                      double beta1, double beta2, double eps,
                      double weight_decay, tb_adam** out);
void tb_adam_free(tb_adam* a);
tb_error* tb_adam_step(tb_adam* a);
tb_error* tb_adam_zero_grad(tb_adam* a);
void tb_adam_set_lr(tb_adam* a, double lr);
int64_t tb_adam_steps(const tb_adam* a);
/* Moments of parameter i (new references; NULL before the first step). */
tb_error* tb_adam_get_state(const tb_adam* a, int i, tb_tensor** m,
                            tb_tensor** v);
/* Restores step count and moments (copied) for resuming. */
tb_error* tb_adam_set_state(tb_adam* a, int64_t steps, int i,
                            const tb_tensor* m, const tb_tensor* v);

/* ---- archives (jit.cpp) ---- */
/* Named tensors read from a PyTorch file: a TorchScript archive (its
 * parameters and buffers) or a pickled state dict (torch.save). */
typedef struct tb_named tb_named;
tb_error* tb_load_archive(const char* path, tb_named** out);
int tb_named_len(const tb_named* n);
const char* tb_named_name(const tb_named* n, int i);
/* A new reference to tensor i. */
tb_error* tb_named_tensor(const tb_named* n, int i, tb_tensor** out);
void tb_named_free(tb_named* n);

/* Bytes made by the bridge, owned by the caller. */
typedef struct tb_bytes tb_bytes;
const char* tb_bytes_data(const tb_bytes* b);
size_t tb_bytes_len(const tb_bytes* b);
void tb_bytes_free(tb_bytes* b);
/* Serialises a dict in torch.save's format (what torch.load reads): entry i
 * is tensor ts[i] under key names[i] of the inner dict groups[i], or
 * directly under names[i] when groups[i] is "". Tensors are written from the
 * CPU, contiguous. */
tb_error* tb_pickle_dicts(const char* const* groups, const char* const* names,
                          const tb_tensor* const* ts, int n, tb_bytes** out);

#ifdef __cplusplus
}
#endif
#endif
