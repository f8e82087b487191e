// internal.h — what the bridge's C++ files share: handle layouts, the
// dtype/device mapping and the exception guard. Not part of the C ABI.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <cstring>
#include <new>
#include <string>

#include "tb.h"

struct tb_tensor {
  at::Tensor t;
};

struct tb_error {
  int kind;
  std::string message;
};

namespace tb {

extern std::atomic<int64_t> live_tensors;

// Wraps a tensor in a new handle owned by the caller.
inline tb_tensor* wrap(at::Tensor t) {
  auto* h = new tb_tensor{std::move(t)};
  live_tensors.fetch_add(1, std::memory_order_relaxed);
  return h;
}

tb_error* make_error(int kind, const std::string& msg);

// Thrown by the bridge itself for arguments it rejects before libtorch sees them.
struct ArgumentError : std::exception {
  std::string msg;
  explicit ArgumentError(std::string m) : msg(std::move(m)) {}
  const char* what() const noexcept override { return msg.c_str(); }
};

at::ScalarType to_scalar_type(int dtype);
int from_scalar_type(at::ScalarType st);
at::Device to_device(int device_type, int device_index);
at::IntArrayRef dims(const int64_t* p, int n);

// Converts the exception in flight into an error object.
tb_error* current_exception();

inline const at::Tensor& T(const tb_tensor* h) {
  if (h == nullptr) throw ArgumentError("null tensor handle");
  return h->t;
}

inline c10::optional<at::Tensor> opt(const tb_tensor* h) {
  if (h == nullptr) return c10::nullopt;
  return h->t;
}

}  // namespace tb

// Every entry point's body sits between TB_TRY and TB_CATCH.
#define TB_TRY try {
#define TB_CATCH \
  return nullptr; \
  }              \
  catch (...) { return tb::current_exception(); }

#define TB_OUT(expr) \
  TB_TRY *out = tb::wrap(expr); TB_CATCH
