// result<T>: a value or an error, for the library's boundaries (C++20 has no
// std::expected). Deliberately minimal.
#pragma once

#include <registry/error.hpp>

#include <cassert>
#include <utility>
#include <variant>

namespace registry {

struct unexpected {
    error err;
};

inline unexpected fail(errc code, std::string message) { return unexpected{error{code, std::move(message)}}; }
// invalid_request for one field of the domain object's input (error.hpp).
inline unexpected fail_field(std::string path, std::string problem) {
    return unexpected{invalid_fields({field_error{std::move(path), std::move(problem)}})};
}

template <typename T>
class [[nodiscard]] result {
public:
    result(T value) : v_(std::in_place_index<0>, std::move(value)) {}
    result(unexpected e) : v_(std::in_place_index<1>, std::move(e.err)) {}

    bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    T& value() & { assert(ok()); return std::get<0>(v_); }
    const T& value() const& { assert(ok()); return std::get<0>(v_); }
    T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    const error& err() const { assert(!ok()); return std::get<1>(v_); }

private:
    std::variant<T, error> v_;
};

template <>
class [[nodiscard]] result<void> {
public:
    result() = default;
    result(unexpected e) : err_(std::move(e.err)), ok_(false) {}

    bool ok() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    const error& err() const { assert(!ok_); return err_; }

private:
    error err_;
    bool ok_ = true;
};

}  // namespace registry
