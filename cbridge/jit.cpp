// jit.cpp — reading PyTorch's own file formats (TorchScript archives and
// torch.save pickles), so that weights convert without Python. Kept apart
// from the other files: its headers are the heaviest to compile.
#include "internal.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/serialization/import.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include <fstream>
#include <iterator>
#include <map>
#include <utility>
#include <vector>

struct tb_named {
  std::vector<std::pair<std::string, at::Tensor>> items;
};

struct tb_bytes {
  std::vector<char> data;
};

namespace {

// Flattens a (possibly nested) state dict: {"a": {"b": t}} gives "a.b".
void collect(const c10::IValue& v, const std::string& prefix, tb_named* out) {
  if (v.isTensor()) {
    out->items.emplace_back(prefix, v.toTensor());
  } else if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict()) {
      if (!kv.key().isString()) continue;
      std::string k = kv.key().toStringRef();
      collect(kv.value(), prefix.empty() ? k : prefix + "." + k, out);
    }
  } else if (v.isObject()) {
    // A module pickled whole: its attributes.
    auto obj = v.toObject();
    auto type = obj->type();
    for (size_t i = 0; i < obj->slots().size(); i++) {
      std::string k = type->getAttributeName(i);
      collect(obj->getSlot(i), prefix.empty() ? k : prefix + "." + k, out);
    }
  }
  // Other values (ints, strings, None, ...) carry no weights.
}

bool is_zip(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char magic[4] = {0, 0, 0, 0};
  f.read(magic, 4);
  return f.gcount() == 4 && magic[0] == 'P' && magic[1] == 'K';
}

}  // namespace

extern "C" {

tb_error* tb_load_archive(const char* path, tb_named** out) {
  TB_TRY
  if (path == nullptr) throw tb::ArgumentError("null path");
  std::string p(path);
  {
    std::ifstream probe(p, std::ios::binary);
    if (!probe) throw tb::ArgumentError("cannot open " + p);
  }
  auto* n = new tb_named();
  try {
    bool loaded = false;
    if (is_zip(p)) {
      // A TorchScript archive has code/ and constants; torch.load's zip does not.
      try {
        torch::jit::Module m = torch::jit::load(p, c10::Device(c10::kCPU));
        for (const auto& item : m.named_parameters(true)) n->items.emplace_back(item.name, item.value);
        for (const auto& item : m.named_buffers(true)) n->items.emplace_back(item.name, item.value);
        loaded = true;
      } catch (const c10::Error&) {
        n->items.clear();
      }
    }
    if (!loaded) {
      std::ifstream f(p, std::ios::binary);
      std::vector<char> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      collect(torch::jit::pickle_load(data), "", n);
    }
  } catch (...) {
    delete n;
    throw;
  }
  *out = n;
  TB_CATCH
}

int tb_named_len(const tb_named* n) { return n ? static_cast<int>(n->items.size()) : 0; }

const char* tb_named_name(const tb_named* n, int i) {
  if (!n || i < 0 || static_cast<size_t>(i) >= n->items.size()) return "";
  return n->items[i].first.c_str();
}

tb_error* tb_named_tensor(const tb_named* n, int i, tb_tensor** out) {
  TB_TRY
  if (!n || i < 0 || static_cast<size_t>(i) >= n->items.size())
    throw tb::ArgumentError("index out of range");
  *out = tb::wrap(n->items[i].second.detach());
  TB_CATCH
}

void tb_named_free(tb_named* n) {
  try { delete n; } catch (...) {}
}

const char* tb_bytes_data(const tb_bytes* b) { return b ? b->data.data() : nullptr; }
size_t tb_bytes_len(const tb_bytes* b) { return b ? b->data.size() : 0; }
void tb_bytes_free(tb_bytes* b) {
  try { delete b; } catch (...) {}
}

tb_error* tb_pickle_dicts(const char* const* groups, const char* const* names,
                          const tb_tensor* const* ts, int n, tb_bytes** out) {
  TB_TRY
  if (n < 0 || (n > 0 && (groups == nullptr || names == nullptr || ts == nullptr)))
    throw tb::ArgumentError("bad entries");
  c10::impl::GenericDict top(c10::StringType::get(), c10::AnyType::get());
  std::vector<std::string> order;  // inner dicts, in first-seen order
  std::map<std::string, c10::Dict<std::string, at::Tensor>> inner;
  for (int i = 0; i < n; i++) {
    std::string g = groups[i] ? groups[i] : "";
    std::string k = names[i] ? names[i] : "";
    at::Tensor t = tb::T(ts[i]).detach().to(at::kCPU).contiguous().clone();
    if (g.empty()) {
      top.insert_or_assign(k, t);
      continue;
    }
    if (inner.find(g) == inner.end()) {
      inner.emplace(g, c10::Dict<std::string, at::Tensor>());
      order.push_back(g);
    }
    inner.at(g).insert_or_assign(k, t);
  }
  for (const auto& g : order) top.insert_or_assign(g, inner.at(g));
  // torch.save's layout: data.pkl and a data/N record per storage. The
  // dicts go untagged, as Python's torch.save writes them: a type tag
  // (torch.jit._pickle.restore_type_tag, which pickle_save adds) is not
  // among the globals torch.load(weights_only=True) accepts, PyTorch's
  // default since 2.6.
  std::vector<char> pkl;
  torch::jit::Pickler pickler(
      [&](const char* buf, size_t size) { pkl.insert(pkl.end(), buf, buf + size); },
      nullptr, nullptr, nullptr, nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(c10::IValue(top));
  pickler.stop();
  auto* b = new tb_bytes();
  try {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* p, size_t size) {
      auto* c = static_cast<const char*>(p);
      b->data.insert(b->data.end(), c, c + size);
      return size;
    });
    writer.writeRecord("data.pkl", pkl.data(), pkl.size());
    const auto& tensors = pickler.tensorData();
    for (size_t i = 0; i < tensors.size(); i++) {
      const auto& st = tensors[i].storage();
      writer.writeRecord("data/" + std::to_string(i), st.data(), st.nbytes());
    }
    writer.writeEndOfFile();
  } catch (...) {
    delete b;
    throw;
  }
  *out = b;
  TB_CATCH
}

}  // extern "C"
