// The integration tests' JSON values: what they build requests from and read
// frames into. A small mutable tree with the part of Boost.JSON's interface
// the tests use (value, object, array; a braced list of key/value pairs is an
// object, any other an array), read with simdjson (the parser registryd
// uses) and written compactly. Objects keep their members in order.
//
// Accessors are checked: as_* and get_* on the wrong kind, at() of a missing
// member or element, throw std::invalid_argument / std::out_of_range (a
// test's failure, never undefined behaviour).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace it::json {

using string = std::string;
using string_view = std::string_view;

class value;
class value_ref;

class array {
public:
    using iterator = std::vector<value>::iterator;
    using const_iterator = std::vector<value>::const_iterator;

    array() = default;
    array(std::initializer_list<value_ref> items);

    std::size_t size() const noexcept;
    bool empty() const noexcept;
    value& operator[](std::size_t i);
    const value& operator[](std::size_t i) const;
    value& at(std::size_t i);
    const value& at(std::size_t i) const;
    value& front();
    const value& front() const;
    value& back();
    const value& back() const;
    iterator begin() noexcept;
    iterator end() noexcept;
    const_iterator begin() const noexcept;
    const_iterator end() const noexcept;
    void push_back(value v);
    template <typename T>
    value& emplace_back(T&& v);
    void reserve(std::size_t n);
    void clear() noexcept;

    friend bool operator==(const array& a, const array& b);

private:
    std::vector<value> items_;
};

using member = std::pair<std::string, value>;

class object {
public:
    using iterator = std::vector<member>::iterator;
    using const_iterator = std::vector<member>::const_iterator;

    object() = default;
    object(std::initializer_list<std::pair<std::string_view, value_ref>> members);

    std::size_t size() const noexcept;
    bool empty() const noexcept;
    iterator begin() noexcept;
    iterator end() noexcept;
    const_iterator begin() const noexcept;
    const_iterator end() const noexcept;

    // The member, inserted as null when missing.
    value& operator[](std::string_view key);
    value& at(std::string_view key);
    const value& at(std::string_view key) const;
    iterator find(std::string_view key) noexcept;
    const_iterator find(std::string_view key) const noexcept;
    bool contains(std::string_view key) const noexcept;
    std::size_t count(std::string_view key) const noexcept;
    value* if_contains(std::string_view key) noexcept;
    const value* if_contains(std::string_view key) const noexcept;
    // Inserts unless the key is there already; true when it inserted.
    std::pair<iterator, bool> emplace(std::string_view key, value v);
    std::size_t erase(std::string_view key);

    friend bool operator==(const object& a, const object& b);

private:
    std::vector<member> members_;
};

class value {
public:
    value() noexcept = default;
    value(std::nullptr_t) noexcept {}
    value(bool b) noexcept : v_(b) {}
    template <std::integral I>
        requires(!std::same_as<I, bool> && std::is_signed_v<I>)
    value(I i) noexcept : v_(static_cast<std::int64_t>(i)) {}
    template <std::integral I>
        requires(!std::same_as<I, bool> && std::is_unsigned_v<I>)
    value(I u) noexcept : v_(static_cast<std::uint64_t>(u)) {}
    value(double d) noexcept : v_(d) {}
    value(const char* s) : v_(std::string(s)) {}
    value(std::string s) noexcept : v_(std::move(s)) {}
    value(std::string_view s) : v_(std::string(s)) {}
    value(array a) noexcept : v_(std::move(a)) {}
    value(object o) noexcept : v_(std::move(o)) {}
    // An object when every item is a [string, value] pair, else an array.
    value(std::initializer_list<value_ref> items);

    bool is_null() const noexcept { return std::holds_alternative<std::monostate>(v_); }
    bool is_bool() const noexcept { return std::holds_alternative<bool>(v_); }
    bool is_int64() const noexcept { return std::holds_alternative<std::int64_t>(v_); }
    bool is_uint64() const noexcept { return std::holds_alternative<std::uint64_t>(v_); }
    bool is_double() const noexcept { return std::holds_alternative<double>(v_); }
    bool is_number() const noexcept { return is_int64() || is_uint64() || is_double(); }
    bool is_string() const noexcept { return std::holds_alternative<std::string>(v_); }
    bool is_array() const noexcept { return std::holds_alternative<array>(v_); }
    bool is_object() const noexcept { return std::holds_alternative<object>(v_); }
    bool is_primitive() const noexcept { return !is_array() && !is_object(); }

    bool& as_bool() { return get<bool>("a boolean"); }
    bool as_bool() const { return get<bool>("a boolean"); }
    std::int64_t& as_int64() { return get<std::int64_t>("an int64"); }
    std::int64_t as_int64() const { return get<std::int64_t>("an int64"); }
    std::uint64_t& as_uint64() { return get<std::uint64_t>("a uint64"); }
    std::uint64_t as_uint64() const { return get<std::uint64_t>("a uint64"); }
    double& as_double() { return get<double>("a double"); }
    double as_double() const { return get<double>("a double"); }
    std::string& as_string() { return get<std::string>("a string"); }
    const std::string& as_string() const { return get<std::string>("a string"); }
    array& as_array() { return get<array>("an array"); }
    const array& as_array() const { return get<array>("an array"); }
    object& as_object() { return get<object>("an object"); }
    const object& as_object() const { return get<object>("an object"); }

    bool& get_bool() { return as_bool(); }
    bool get_bool() const { return as_bool(); }
    std::int64_t& get_int64() { return as_int64(); }
    std::int64_t get_int64() const { return as_int64(); }
    std::uint64_t& get_uint64() { return as_uint64(); }
    std::uint64_t get_uint64() const { return as_uint64(); }
    double& get_double() { return as_double(); }
    double get_double() const { return as_double(); }
    std::string& get_string() { return as_string(); }
    const std::string& get_string() const { return as_string(); }
    array& get_array() { return as_array(); }
    const array& get_array() const { return as_array(); }
    object& get_object() { return as_object(); }
    const object& get_object() const { return as_object(); }

    bool* if_bool() noexcept { return std::get_if<bool>(&v_); }
    const bool* if_bool() const noexcept { return std::get_if<bool>(&v_); }
    std::int64_t* if_int64() noexcept { return std::get_if<std::int64_t>(&v_); }
    const std::int64_t* if_int64() const noexcept { return std::get_if<std::int64_t>(&v_); }
    std::uint64_t* if_uint64() noexcept { return std::get_if<std::uint64_t>(&v_); }
    const std::uint64_t* if_uint64() const noexcept { return std::get_if<std::uint64_t>(&v_); }
    double* if_double() noexcept { return std::get_if<double>(&v_); }
    const double* if_double() const noexcept { return std::get_if<double>(&v_); }
    std::string* if_string() noexcept { return std::get_if<std::string>(&v_); }
    const std::string* if_string() const noexcept { return std::get_if<std::string>(&v_); }
    array* if_array() noexcept { return std::get_if<array>(&v_); }
    const array* if_array() const noexcept { return std::get_if<array>(&v_); }
    object* if_object() noexcept { return std::get_if<object>(&v_); }
    const object* if_object() const noexcept { return std::get_if<object>(&v_); }

    // A member of an object, an element of an array.
    value& at(std::string_view key) { return as_object().at(key); }
    const value& at(std::string_view key) const { return as_object().at(key); }
    value& at(std::size_t i) { return as_array().at(i); }
    const value& at(std::size_t i) const { return as_array().at(i); }

    // RFC 6901 pointers ("/data/services/0/name"): nullptr / out_of_range when absent.
    const value* find_pointer(std::string_view pointer) const noexcept;
    value* find_pointer(std::string_view pointer) noexcept;
    const value& at_pointer(std::string_view pointer) const;
    value& at_pointer(std::string_view pointer);

    // Any number as T; invalid_argument for anything else.
    template <typename T>
    T to_number() const {
        if (const auto* i = if_int64()) return static_cast<T>(*i);
        if (const auto* u = if_uint64()) return static_cast<T>(*u);
        if (const auto* d = if_double()) return static_cast<T>(*d);
        throw_not("a number");
    }

    friend bool operator==(const value& a, const value& b);

private:
    template <typename T>
    T& get(const char* what) {
        if (auto* p = std::get_if<T>(&v_)) return *p;
        throw_not(what);
    }
    template <typename T>
    const T& get(const char* what) const {
        if (const auto* p = std::get_if<T>(&v_)) return *p;
        throw_not(what);
    }
    [[noreturn]] void throw_not(const char* what) const;

    std::variant<std::monostate, bool, std::int64_t, std::uint64_t, double, std::string, array, object> v_;
};

// An item of a braced list: any value, or a nested braced list (an object
// when every item is a [string, value] pair, else an array).
class value_ref {
public:
    template <typename T>
        requires std::constructible_from<value, T&&>
    value_ref(T&& v) : v_(std::forward<T>(v)) {}
    value_ref(std::initializer_list<value_ref> items);

    value make_value() const { return v_; }
    // A [string, value] braced pair: an object's member in a braced list.
    bool is_pair() const noexcept;

private:
    value v_;
    bool braced_ = false;  // a nested braced list, made an array or an object
};

template <typename T>
value& array::emplace_back(T&& v) {
    items_.emplace_back(std::forward<T>(v));
    return items_.back();
}

// Throws std::invalid_argument naming the error (and the start of the text).
value parse(std::string_view text);
// Compact: no spaces, members in order.
std::string serialize(const value& v);
std::string serialize(const object& o);
std::string serialize(const array& a);

}  // namespace it::json
