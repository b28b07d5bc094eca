// fmt formatters for LibTorch types that error messages name (shapes, dtypes, devices).
#pragma once
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>
#include <fmt/format.h>

#include <sstream>

template <typename T>
struct fmt::formatter<c10::ArrayRef<T>> : fmt::formatter<std::string> {
  auto format(c10::ArrayRef<T> a, fmt::format_context& ctx) const {
    std::string s = "[";
    for (size_t i = 0; i < a.size(); ++i) s += (i ? ", " : "") + fmt::format("{}", a[i]);
    return fmt::formatter<std::string>::format(s + "]", ctx);
  }
};

template <>
struct fmt::formatter<c10::ScalarType> : fmt::formatter<std::string> {
  auto format(c10::ScalarType t, fmt::format_context& ctx) const {
    return fmt::formatter<std::string>::format(std::string(c10::toString(t)), ctx);
  }
};

template <>
struct fmt::formatter<c10::Device> : fmt::formatter<std::string> {
  auto format(const c10::Device& d, fmt::format_context& ctx) const {
    return fmt::formatter<std::string>::format(d.str(), ctx);
  }
};
