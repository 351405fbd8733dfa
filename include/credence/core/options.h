#pragma once
/// Options whose fields are declared once: that one list drives parsing of
/// `name:key=value,...`, validation, JSON and `credence describe`.
#include <nlohmann/json_fwd.hpp>

#include <map>
#include <string>
#include <vector>

namespace credence {

enum class FieldType { Int, Double, Bool, String, Choice };

/// One declared option: its name, type, default (as text) and meaning.
struct Field {
  std::string name;
  FieldType type;
  std::string default_value;
  std::string help;
  std::vector<std::string> choices;  ///< for Choice
};
const char* to_string(FieldType type);

/// Validated values for a list of fields (defaults filled in).
class Options {
 public:
  Options() = default;
  /// Checks every key against `fields` and every value against its type; throws InvalidArgument
  /// naming the bad key or value and what is allowed. `owner` names the method in messages.
  Options(const std::string& owner, const std::vector<Field>& fields,
          const std::map<std::string, std::string>& given);

  long get_int(const std::string& name) const;
  double get_double(const std::string& name) const;
  bool get_bool(const std::string& name) const;
  const std::string& get_string(const std::string& name) const;
  /// Whether the user set `name` (rather than it holding its default).
  bool given(const std::string& name) const { return given_.count(name) > 0; }
  const std::map<std::string, std::string>& values() const { return values_; }
  void to_json(nlohmann::json& j) const;

 private:
  const std::string& raw(const std::string& name) const;
  std::string owner_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::string> given_;
};

/// `name[:key=value,key=value...]`; a comma inside a value is kept when the next piece has no '='.
struct MethodSpec {
  std::string text;
  std::string name;
  std::map<std::string, std::string> values;
  static MethodSpec parse(const std::string& text);
  /// name:key=value,... (keys in order; the name alone without values).
  std::string str() const;
};

}  // namespace credence
