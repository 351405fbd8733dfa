#include "credence/core/spec.h"

#include <fmt/format.h>

#include <cerrno>
#include <cstdlib>

#include "credence/core/error.h"

namespace credence {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    out.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) break;
    start = pos + 1;
  }
  return out;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

double parse_double(const std::string& s, const std::string& what) {
  std::string t = trim(s);
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || end != t.c_str() + t.size() || errno == ERANGE)
    throw InvalidArgument(fmt::format("{}: '{}' is not a number", what, s));
  return v;
}

long parse_int(const std::string& s, const std::string& what) {
  std::string t = trim(s);
  char* end = nullptr;
  errno = 0;
  long v = std::strtol(t.c_str(), &end, 10);
  if (t.empty() || end != t.c_str() + t.size() || errno == ERANGE)
    throw InvalidArgument(fmt::format("{}: '{}' is not an integer", what, s));
  return v;
}

bool parse_bool(const std::string& s, const std::string& what) {
  std::string t = trim(s);
  if (t == "true" || t == "1" || t == "yes" || t == "on") return true;
  if (t == "false" || t == "0" || t == "no" || t == "off") return false;
  throw InvalidArgument(fmt::format("{}: '{}' is not a boolean (use true or false)", what, s));
}

Spec Spec::parse(const std::string& text) {
  Spec spec;
  spec.text = text;
  std::string head = text;
  size_t q = text.find('?');
  if (q != std::string::npos) {
    head = text.substr(0, q);
    for (const auto& pair : split(text.substr(q + 1), '&')) {
      if (pair.empty()) continue;
      size_t eq = pair.find('=');
      if (eq == std::string::npos || eq == 0)
        throw InvalidArgument(
            fmt::format("spec '{}': '{}' is not key=value (e.g. '?n=1000')", text, pair));
      const std::string key = pair.substr(0, eq);
      if (spec.query.count(key))
        throw InvalidArgument(fmt::format("spec '{}': key '{}' is given twice ('{}' and '{}'); keep one", text,
                                          key, spec.query[key], pair.substr(eq + 1)));
      spec.query[key] = pair.substr(eq + 1);
    }
  }
  size_t colon = head.find(':');
  spec.scheme = head.substr(0, colon);
  spec.body = colon == std::string::npos ? "" : head.substr(colon + 1);
  if (spec.scheme.empty())
    throw InvalidArgument(fmt::format("spec '{}' has no scheme (e.g. 'fmnist:train')", text));
  return spec;
}

std::string Spec::get(const std::string& key, const std::string& fallback) const {
  auto it = query.find(key);
  return it == query.end() ? fallback : it->second;
}

double Spec::get_double(const std::string& key, double fallback) const {
  auto it = query.find(key);
  return it == query.end() ? fallback : parse_double(it->second, fmt::format("spec '{}' key '{}'", text, key));
}

long Spec::get_int(const std::string& key, long fallback) const {
  auto it = query.find(key);
  return it == query.end() ? fallback : parse_int(it->second, fmt::format("spec '{}' key '{}'", text, key));
}

void Spec::check_keys(const std::set<std::string>& allowed, bool data_error) const {
  for (const auto& [key, value] : query) {
    if (allowed.count(key)) continue;
    std::string names;
    for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
    std::string msg = fmt::format("spec '{}': unknown key '{}' (known keys for '{}': {})", text, key,
                                  scheme, names.empty() ? "none" : names);
    if (data_error) throw DataError(msg);
    throw InvalidArgument(msg);
  }
}

}  // namespace credence
