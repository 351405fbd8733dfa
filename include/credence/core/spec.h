#pragma once
/// Parsing of the `scheme:body?key=value&key=value` strings used by --data and --model.
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace credence {

/// A parsed spec such as `fmnist:train?n=1000&holdout=val:0.1` or `mlp:256,256?act=tanh`.
struct Spec {
  std::string text;    ///< the spec as given
  std::string scheme;  ///< before the first ':' (`fmnist`)
  std::string body;    ///< between ':' and '?' (`train`)
  std::map<std::string, std::string> query;  ///< key=value pairs after '?'

  static Spec parse(const std::string& text);

  bool has(const std::string& key) const { return query.count(key) > 0; }
  std::string get(const std::string& key, const std::string& fallback) const;
  double get_double(const std::string& key, double fallback) const;
  long get_int(const std::string& key, long fallback) const;
  /// Throws `error_type` (DataError or InvalidArgument) naming any key not in `allowed`.
  void check_keys(const std::set<std::string>& allowed, bool data_error) const;
};

/// Splits `s` on `sep`, keeping empty pieces.
std::vector<std::string> split(const std::string& s, char sep);
std::string trim(const std::string& s);
/// Strict conversions: the whole string must be a number, else InvalidArgument naming `what`.
double parse_double(const std::string& s, const std::string& what);
long parse_int(const std::string& s, const std::string& what);
bool parse_bool(const std::string& s, const std::string& what);

}  // namespace credence
