// Reading tokenizer.json with errors a user can act on: every accessor knows the file and
// the dotted path of the field it reads ("model.merges[12]"), and says what it expected.
#pragma once
#include <nlohmann/json.hpp>

#include <initializer_list>
#include <string>
#include <string_view>

#include "hyla/util/error.h"

namespace hyla::io::bpe {

class JsonAt {
 public:
  JsonAt(const nlohmann::json& j, std::string file, std::string path)
      : j_(j), file_(std::move(file)), path_(std::move(path)) {}

  [[noreturn]] void fail(std::string_view what) const {
    hyla::fail("{}: field `{}`: {}", file_, path_.empty() ? "<root>" : path_, what);
  }
  const nlohmann::json& raw() const { return j_; }
  const std::string& path() const { return path_; }
  const std::string& file() const { return file_; }

  bool has(std::string_view key) const {  // present and not null
    return j_.is_object() && j_.contains(key) && !j_.at(key).is_null();
  }
  JsonAt at(std::string_view key) const {
    if (!j_.is_object()) fail("expected an object");
    auto it = j_.find(key);
    if (it == j_.end()) child(key, j_).fail("missing");
    return child(key, *it);
  }
  JsonAt operator[](size_t i) const {
    return JsonAt(j_.at(i), file_, fmt::format("{}[{}]", path_, i));
  }
  size_t size() const {
    if (!j_.is_array()) fail("expected an array");
    return j_.size();
  }
  std::string str() const {
    if (!j_.is_string()) fail(fmt::format("expected a string, got {}", j_.type_name()));
    return j_.get<std::string>();
  }
  bool boolean() const {
    if (!j_.is_boolean()) fail(fmt::format("expected true/false, got {}", j_.type_name()));
    return j_.get<bool>();
  }
  int64_t integer() const {
    if (!j_.is_number_integer()) fail(fmt::format("expected an integer, got {}", j_.type_name()));
    return j_.get<int64_t>();
  }
  bool opt_bool(std::string_view key, bool fallback) const {
    return has(key) ? at(key).boolean() : fallback;
  }
  std::string type() const { return at("type").str(); }
  // Rejects keys this reader does not know: an unknown key may change behaviour.
  void only_keys(std::initializer_list<std::string_view> known) const {
    if (!j_.is_object()) fail("expected an object");
    for (auto it = j_.begin(); it != j_.end(); ++it) {
      bool ok = false;
      for (auto k : known) ok |= k == it.key();
      if (!ok) child(it.key(), it.value()).fail("unknown field (not supported by hyla)");
    }
  }

 private:
  JsonAt child(std::string_view key, const nlohmann::json& v) const {
    return JsonAt(v, file_, path_.empty() ? std::string(key) : fmt::format("{}.{}", path_, key));
  }
  const nlohmann::json& j_;
  std::string file_, path_;
};

}  // namespace hyla::io::bpe
