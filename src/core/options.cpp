#include "credence/core/options.h"

#include <fmt/format.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "credence/core/error.h"
#include "credence/core/spec.h"

namespace credence {

const char* to_string(FieldType type) {
  switch (type) {
    case FieldType::Int: return "int";
    case FieldType::Double: return "float";
    case FieldType::Bool: return "bool";
    case FieldType::String: return "string";
    case FieldType::Choice: return "choice";
  }
  return "?";
}

namespace {
void check_value(const std::string& owner, const Field& f, const std::string& v) {
  std::string what = fmt::format("{}: option '{}'", owner, f.name);
  switch (f.type) {
    case FieldType::Int: parse_int(v, what); break;
    case FieldType::Double: parse_double(v, what); break;
    case FieldType::Bool: parse_bool(v, what); break;
    case FieldType::String: break;
    case FieldType::Choice:
      if (std::find(f.choices.begin(), f.choices.end(), v) == f.choices.end())
        throw InvalidArgument(fmt::format("{}: '{}' is not one of: {}", what, v,
                                          fmt::join(f.choices, ", ")));
  }
}
}  // namespace

Options::Options(const std::string& owner, const std::vector<Field>& fields,
                 const std::map<std::string, std::string>& given)
    : owner_(owner), given_(given) {
  for (const auto& f : fields) values_[f.name] = f.default_value;
  for (const auto& [key, value] : given) {
    auto it = std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.name == key; });
    if (it == fields.end()) {
      std::vector<std::string> names;
      for (const auto& f : fields) names.push_back(f.name);
      throw InvalidArgument(fmt::format("{}: unknown option '{}' (options: {}; see `credence describe {}`)",
                                        owner, key, names.empty() ? "none" : fmt::format("{}", fmt::join(names, ", ")),
                                        owner));
    }
    check_value(owner, *it, value);
    values_[key] = value;
  }
}

const std::string& Options::raw(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end())
    throw InvalidArgument(fmt::format("{}: no option named '{}'", owner_, name));
  return it->second;
}

long Options::get_int(const std::string& name) const { return parse_int(raw(name), owner_ + "." + name); }
double Options::get_double(const std::string& name) const {
  return parse_double(raw(name), owner_ + "." + name);
}
bool Options::get_bool(const std::string& name) const { return parse_bool(raw(name), owner_ + "." + name); }
const std::string& Options::get_string(const std::string& name) const { return raw(name); }

void Options::to_json(nlohmann::json& j) const {
  j = nlohmann::json::object();
  for (const auto& [k, v] : values_) j[k] = v;
}

MethodSpec MethodSpec::parse(const std::string& text) {
  MethodSpec spec;
  spec.text = text;
  size_t colon = text.find(':');
  spec.name = trim(text.substr(0, colon));
  if (spec.name.empty())
    throw InvalidArgument(fmt::format("method '{}' has no name (e.g. 'map' or 'laplace:hessian=kron')", text));
  if (colon == std::string::npos) return spec;
  std::string last;
  for (const auto& piece : split(text.substr(colon + 1), ',')) {
    size_t eq = piece.find('=');
    if (eq == std::string::npos) {
      if (last.empty())
        throw InvalidArgument(fmt::format("method '{}': '{}' is not key=value", text, piece));
      spec.values[last] += "," + piece;
      continue;
    }
    last = trim(piece.substr(0, eq));
    if (spec.values.count(last))
      throw InvalidArgument(fmt::format("method '{}': option '{}' given twice", text, last));
    spec.values[last] = trim(piece.substr(eq + 1));
  }
  return spec;
}

std::string MethodSpec::str() const {
  std::string out = name;
  for (const auto& [key, value] : values) out += (out.size() == name.size() ? ":" : ",") + key + "=" + value;
  return out;
}

}  // namespace credence
