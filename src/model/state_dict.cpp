// torch.save archives (a zip of data.pkl plus one record per storage) read without Python.
// LibTorch's own unpickler cannot rebuild the OrderedDict that module.state_dict() returns, so this
// reads the pickle opcodes a state dict uses: dicts, tuples, strings, numbers, tensors.
#include <ATen/ATen.h>
#include <caffe2/serialize/inline_container.h>
#include <fmt/format.h>

#include <cstring>
#include <map>
#include <memory>
#include <unordered_map>

#include "credence/core/error.h"
#include "credence/core/files.h"
#include "credence/model/weights.h"

namespace credence {
namespace {

struct PyValue;
using PyPtr = std::shared_ptr<PyValue>;
struct PyValue {
  enum Kind { None, Bool, Int, Float, Str, Tuple, Dict, Global, Tensor } kind = None;
  int64_t i = 0;
  double f = 0;
  std::string s;              // Str; Global: "module.name"
  std::vector<PyPtr> items;   // Tuple (and lists)
  std::vector<std::pair<PyPtr, PyPtr>> dict;
  at::Tensor tensor;          // Tensor; a storage is a 1-D tensor
};

PyPtr make(PyValue::Kind k) {
  auto v = std::make_shared<PyValue>();
  v->kind = k;
  return v;
}

at::ScalarType storage_dtype(const std::string& global) {
  static const std::map<std::string, at::ScalarType> types = {
      {"torch.DoubleStorage", at::kDouble}, {"torch.FloatStorage", at::kFloat}, {"torch.HalfStorage", at::kHalf},
      {"torch.BFloat16Storage", at::kBFloat16}, {"torch.LongStorage", at::kLong}, {"torch.IntStorage", at::kInt},
      {"torch.ShortStorage", at::kShort}, {"torch.CharStorage", at::kChar}, {"torch.ByteStorage", at::kByte},
      {"torch.BoolStorage", at::kBool}};
  auto it = types.find(global);
  if (it == types.end()) throw IoError(fmt::format("unsupported tensor storage '{}'", global));
  return it->second;
}

std::vector<int64_t> ints(const PyValue& tuple) {
  std::vector<int64_t> out;
  for (const auto& v : tuple.items) out.push_back(v->i);
  return out;
}

class Unpickler {
 public:
  Unpickler(const std::string& pickle, caffe2::serialize::PyTorchStreamReader& reader)
      : p_(pickle), reader_(reader) {}

  PyPtr run() {
    while (pos_ < p_.size()) {
      const auto op = static_cast<unsigned char>(p_[pos_++]);
      switch (op) {
        case 0x80: pos_ += 1; break;  // PROTO
        case '.': return pop();        // STOP
        case 'c': {                    // GLOBAL module\nname\n
          auto g = make(PyValue::Global);
          const std::string module = line();  // two statements: the order is fixed
          g->s = module + "." + line();
          push(g);
          break;
        }
        case 'q': memo_[byte()] = top(); break;         // BINPUT
        case 'r': memo_[u32()] = top(); break;          // LONG_BINPUT
        case 'h': push(memo_.at(byte())); break;        // BINGET
        case 'j': push(memo_.at(u32())); break;         // LONG_BINGET
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case ')': push(make(PyValue::Tuple)); break;    // EMPTY_TUPLE
        case ']': push(make(PyValue::Tuple)); break;    // EMPTY_LIST (kept as a tuple)
        case 't': push(tuple_from_mark()); break;       // TUPLE
        case 0x85: push(tuple_of(1)); break;            // TUPLE1
        case 0x86: push(tuple_of(2)); break;            // TUPLE2
        case 0x87: push(tuple_of(3)); break;            // TUPLE3
        case 'N': push(make(PyValue::None)); break;
        case 0x88: case 0x89: {                         // NEWTRUE, NEWFALSE
          auto b = make(PyValue::Bool);
          b->i = op == 0x88;
          push(b);
          break;
        }
        case 'K': push_int(byte()); break;              // BININT1
        case 'M': push_int(u16()); break;               // BININT2
        case 'J': push_int(static_cast<int32_t>(u32())); break;  // BININT
        case 0x8a: {                                    // LONG1
          const size_t n = byte();
          int64_t v = 0;
          for (size_t k = 0; k < n && k < 8; ++k) v |= static_cast<int64_t>(static_cast<unsigned char>(p_[pos_ + k])) << (8 * k);
          if (n > 0 && n < 8 && (static_cast<unsigned char>(p_[pos_ + n - 1]) & 0x80)) v -= int64_t(1) << (8 * n);
          pos_ += n;
          push_int(v);
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          uint64_t bits = 0;
          for (int k = 0; k < 8; ++k) bits = (bits << 8) | static_cast<unsigned char>(p_[pos_ + k]);
          pos_ += 8;
          auto f = make(PyValue::Float);
          std::memcpy(&f->f, &bits, 8);
          push(f);
          break;
        }
        case 'X': {  // BINUNICODE
          const size_t n = u32();
          auto s = make(PyValue::Str);
          s->s = p_.substr(pos_, n);
          pos_ += n;
          push(s);
          break;
        }
        case '}': push(make(PyValue::Dict)); break;  // EMPTY_DICT
        case 's': {                                   // SETITEM
          auto v = pop(), k = pop();
          top()->dict.emplace_back(k, v);
          break;
        }
        case 'u': {  // SETITEMS
          auto items = pop_mark();
          for (size_t k = 0; k + 1 < items.size(); k += 2) top()->dict.emplace_back(items[k], items[k + 1]);
          break;
        }
        case 'a': {  // APPEND
          auto v = pop();
          top()->items.push_back(v);
          break;
        }
        case 'e': {  // APPENDS
          auto items = pop_mark();
          for (auto& v : items) top()->items.push_back(v);
          break;
        }
        case 'b': pop(); break;  // BUILD: attribute state (a state dict's _metadata) is not needed
        case 'Q': push(storage(*pop())); break;  // BINPERSID
        case 'R': {                               // REDUCE
          auto args = pop(), callable = pop();
          push(reduce(*callable, *args));
          break;
        }
        default:
          throw IoError(fmt::format("pickle opcode 0x{:02x} at byte {} is not one a state dict uses", op, pos_ - 1));
      }
    }
    throw IoError("the pickle ends without STOP");
  }

 private:
  PyPtr reduce(const PyValue& callable, const PyValue& args) {
    if (callable.kind != PyValue::Global) throw IoError("a call of something that is not a known function");
    if (callable.s == "collections.OrderedDict" || callable.s == "builtins.dict") return make(PyValue::Dict);
    if (callable.s == "torch._utils._rebuild_tensor_v2") {
      const auto& storage = args.items.at(0)->tensor;
      auto t = make(PyValue::Tensor);
      t->tensor = storage.as_strided(ints(*args.items.at(2)), ints(*args.items.at(3)), args.items.at(1)->i).clone();
      return t;
    }
    if (callable.s == "torch._utils._rebuild_parameter") return args.items.at(0);
    throw IoError(fmt::format("the file holds a '{}', which a state dict of tensors does not", callable.s));
  }

  // ('storage', <storage type>, key, location, numel) -> the record data/<key> as a 1-D tensor.
  PyPtr storage(const PyValue& pid) {
    if (pid.items.size() < 5 || pid.items[0]->s != "storage") throw IoError("an unknown persistent object");
    const std::string key = pid.items[2]->s;
    auto it = storages_.find(key);
    if (it == storages_.end()) {
      const auto dtype = storage_dtype(pid.items[1]->s);
      const int64_t numel = pid.items[4]->i;
      auto [data, size] = reader_.getRecord("data/" + key);
      auto t = at::empty({numel}, at::TensorOptions().dtype(dtype));
      if (size != static_cast<size_t>(numel) * t.element_size())
        throw IoError(fmt::format("storage {} has {} bytes, expected {}", key, size, numel * t.element_size()));
      std::memcpy(t.data_ptr(), data.get(), size);
      it = storages_.emplace(key, t).first;
    }
    auto v = make(PyValue::Tensor);
    v->tensor = it->second;
    return v;
  }

  void push(PyPtr v) { stack_.push_back(std::move(v)); }
  void push_int(int64_t i) {
    auto v = make(PyValue::Int);
    v->i = i;
    push(v);
  }
  PyPtr top() {
    if (stack_.empty()) throw IoError("the pickle's stack is empty");
    return stack_.back();
  }
  PyPtr pop() {
    auto v = top();
    stack_.pop_back();
    return v;
  }
  std::vector<PyPtr> pop_mark() {
    if (marks_.empty()) throw IoError("the pickle has no MARK");
    std::vector<PyPtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  PyPtr tuple_from_mark() {
    auto t = make(PyValue::Tuple);
    t->items = pop_mark();
    return t;
  }
  PyPtr tuple_of(size_t n) {
    auto t = make(PyValue::Tuple);
    t->items.resize(n);
    for (size_t k = n; k-- > 0;) t->items[k] = pop();
    return t;
  }
  uint32_t byte() { return static_cast<unsigned char>(p_.at(pos_++)); }
  uint32_t u16() { return byte() | (byte() << 8); }
  uint32_t u32() {
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) v |= byte() << (8 * k);
    return v;
  }
  std::string line() {
    size_t end = p_.find('\n', pos_);
    if (end == std::string::npos) throw IoError("a GLOBAL without its name");
    std::string s = p_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return s;
  }

  const std::string& p_;
  caffe2::serialize::PyTorchStreamReader& reader_;
  size_t pos_ = 0;
  std::vector<PyPtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint32_t, PyPtr> memo_;
  std::map<std::string, at::Tensor> storages_;
};

}  // namespace

NamedWeights load_state_dict(const std::string& path) {
  check_input_file(path, "weights file");
  PyPtr root;
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    auto [data, size] = reader.getRecord("data.pkl");
    const std::string pickle(static_cast<const char*>(data.get()), size);
    root = Unpickler(pickle, reader).run();
  } catch (const IoError& e) {
    throw IoError(fmt::format("'{}' cannot be read as a torch.save file: {}", path, e.what()));
  } catch (const std::exception&) {
    throw IoError(fmt::format("'{}' is neither a credence file nor a torch.save archive (save a module's weights "
                              "with torch.save(module.state_dict(), PATH), PyTorch 1.6 or later)",
                              path));
  }
  if (root->kind != PyValue::Dict)
    throw IoError(fmt::format("'{}' holds no dict of tensors; save module.state_dict()", path));
  NamedWeights out;
  for (const auto& [k, v] : root->dict) {
    if (k->kind != PyValue::Str || v->kind != PyValue::Tensor)
      throw IoError(fmt::format("'{}' has an entry that is not a name and a tensor; save module.state_dict()", path));
    out.emplace_back(k->s, v->tensor);
  }
  return out;
}

}  // namespace credence
