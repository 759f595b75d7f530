#include "harness_json.hpp"

#include <simdjson.h>

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace it::json {

// ---------------------------------------------------------------- array

array::array(std::initializer_list<value_ref> items) {
    items_.reserve(items.size());
    for (const auto& i : items) items_.push_back(i.make_value());
}

std::size_t array::size() const noexcept { return items_.size(); }
bool array::empty() const noexcept { return items_.empty(); }
value& array::operator[](std::size_t i) { return items_[i]; }
const value& array::operator[](std::size_t i) const { return items_[i]; }
value& array::at(std::size_t i) { return items_.at(i); }
const value& array::at(std::size_t i) const { return items_.at(i); }
value& array::front() { return items_.at(0); }
const value& array::front() const { return items_.at(0); }
value& array::back() { return items_.at(items_.size() - 1); }
const value& array::back() const { return items_.at(items_.size() - 1); }
array::iterator array::begin() noexcept { return items_.begin(); }
array::iterator array::end() noexcept { return items_.end(); }
array::const_iterator array::begin() const noexcept { return items_.begin(); }
array::const_iterator array::end() const noexcept { return items_.end(); }
void array::push_back(value v) { items_.push_back(std::move(v)); }
void array::reserve(std::size_t n) { items_.reserve(n); }
void array::clear() noexcept { items_.clear(); }

bool operator==(const array& a, const array& b) { return a.items_ == b.items_; }

// ---------------------------------------------------------------- object

object::object(std::initializer_list<std::pair<std::string_view, value_ref>> members) {
    members_.reserve(members.size());
    for (const auto& [k, v] : members) (*this)[k] = v.make_value();
}

std::size_t object::size() const noexcept { return members_.size(); }
bool object::empty() const noexcept { return members_.empty(); }
object::iterator object::begin() noexcept { return members_.begin(); }
object::iterator object::end() noexcept { return members_.end(); }
object::const_iterator object::begin() const noexcept { return members_.begin(); }
object::const_iterator object::end() const noexcept { return members_.end(); }

value& object::operator[](std::string_view key) {
    if (auto it = find(key); it != end()) return it->second;
    members_.emplace_back(std::string(key), value());
    return members_.back().second;
}

value& object::at(std::string_view key) {
    if (auto it = find(key); it != end()) return it->second;
    throw std::out_of_range("JSON object has no member \"" + std::string(key) + "\"");
}

const value& object::at(std::string_view key) const {
    if (auto it = find(key); it != end()) return it->second;
    throw std::out_of_range("JSON object has no member \"" + std::string(key) + "\"");
}

object::iterator object::find(std::string_view key) noexcept {
    for (auto it = members_.begin(); it != members_.end(); ++it) {
        if (it->first == key) return it;
    }
    return members_.end();
}

object::const_iterator object::find(std::string_view key) const noexcept {
    for (auto it = members_.begin(); it != members_.end(); ++it) {
        if (it->first == key) return it;
    }
    return members_.end();
}

bool object::contains(std::string_view key) const noexcept { return find(key) != end(); }
std::size_t object::count(std::string_view key) const noexcept { return contains(key) ? 1 : 0; }

value* object::if_contains(std::string_view key) noexcept {
    auto it = find(key);
    return it == end() ? nullptr : &it->second;
}

const value* object::if_contains(std::string_view key) const noexcept {
    auto it = find(key);
    return it == end() ? nullptr : &it->second;
}

std::pair<object::iterator, bool> object::emplace(std::string_view key, value v) {
    if (auto it = find(key); it != end()) return {it, false};
    members_.emplace_back(std::string(key), std::move(v));
    return {members_.end() - 1, true};
}

std::size_t object::erase(std::string_view key) {
    auto it = find(key);
    if (it == end()) return 0;
    members_.erase(it);
    return 1;
}

// Members in any order, as JSON means it.
bool operator==(const object& a, const object& b) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a) {
        const value* other = b.if_contains(k);
        if (!other || !(*other == v)) return false;
    }
    return true;
}

// ---------------------------------------------------------------- value

namespace {

value from_list(std::initializer_list<value_ref> items) {
    bool pairs = items.size() > 0;
    for (const auto& i : items) pairs = pairs && i.is_pair();
    if (!pairs) return array(items);
    object o;
    for (const auto& i : items) {
        value pair = i.make_value();
        o[pair.as_array()[0].as_string()] = std::move(pair.as_array()[1]);
    }
    return o;
}

}  // namespace

// One item: that item (as Boost.JSON does), not an array of one.
value::value(std::initializer_list<value_ref> items) {
    if (items.size() == 1 && !items.begin()->is_pair()) {
        *this = items.begin()->make_value();
    } else {
        *this = from_list(items);
    }
}

void value::throw_not(const char* what) const {
    throw std::invalid_argument(std::string("JSON value is not ") + what + ": " + serialize(*this));
}

bool operator==(const value& a, const value& b) {
    // Numbers compare by value across int64 and uint64, as in Boost.JSON.
    if (a.is_int64() && b.is_uint64()) return a.get_int64() >= 0 && static_cast<std::uint64_t>(a.get_int64()) == b.get_uint64();
    if (a.is_uint64() && b.is_int64()) return b == a;
    return a.v_ == b.v_;
}

namespace {

// The next reference token of `pointer` (which starts with '/'), unescaped.
std::string next_token(std::string_view& pointer) {
    pointer.remove_prefix(1);
    const auto end = pointer.find('/');
    std::string_view raw = pointer.substr(0, end);
    pointer.remove_prefix(raw.size());
    std::string token;
    for (std::size_t i = 0; i < raw.size(); ++i) {
        if (raw[i] == '~' && i + 1 < raw.size() && (raw[i + 1] == '0' || raw[i + 1] == '1')) {
            token += raw[i + 1] == '0' ? '~' : '/';
            ++i;
        } else {
            token += raw[i];
        }
    }
    return token;
}

}  // namespace

const value* value::find_pointer(std::string_view pointer) const noexcept {
    const value* at = this;
    if (!pointer.empty() && pointer.front() != '/') return nullptr;
    while (!pointer.empty()) {
        const std::string token = next_token(pointer);
        if (const object* o = at->if_object()) {
            at = o->if_contains(token);
        } else if (const array* a = at->if_array()) {
            std::size_t i = 0;
            const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), i);
            if (token.empty() || ec != std::errc{} || end != token.data() + token.size() || i >= a->size() ||
                (token.size() > 1 && token[0] == '0')) {
                return nullptr;
            }
            at = &(*a)[i];
        } else {
            return nullptr;
        }
        if (!at) return nullptr;
    }
    return at;
}

value* value::find_pointer(std::string_view pointer) noexcept {
    return const_cast<value*>(static_cast<const value&>(*this).find_pointer(pointer));
}

const value& value::at_pointer(std::string_view pointer) const {
    if (const value* v = find_pointer(pointer)) return *v;
    throw std::out_of_range("JSON has no " + std::string(pointer));
}

value& value::at_pointer(std::string_view pointer) {
    if (value* v = find_pointer(pointer)) return *v;
    throw std::out_of_range("JSON has no " + std::string(pointer));
}

// ---------------------------------------------------------------- value_ref

value_ref::value_ref(std::initializer_list<value_ref> items) : v_(from_list(items)), braced_(true) {}

bool value_ref::is_pair() const noexcept {
    const array* a = v_.if_array();
    return braced_ && a && a->size() == 2 && (*a)[0].is_string();
}

// ---------------------------------------------------------------- reading

namespace {

namespace dom = simdjson::dom;

value from_element(dom::element e) {
    switch (e.type()) {
        case dom::element_type::NULL_VALUE: return nullptr;
        case dom::element_type::BOOL: return e.get_bool().value_unsafe();
        case dom::element_type::INT64: return e.get_int64().value_unsafe();
        case dom::element_type::UINT64: return e.get_uint64().value_unsafe();
        case dom::element_type::DOUBLE: return e.get_double().value_unsafe();
        case dom::element_type::STRING: return std::string(e.get_string().value_unsafe());
        case dom::element_type::ARRAY: {
            const dom::array items = e.get_array().value_unsafe();
            array a;
            for (dom::element item : items) a.push_back(from_element(item));
            return a;
        }
        case dom::element_type::OBJECT: {
            const dom::object members = e.get_object().value_unsafe();
            object o;
            for (dom::key_value_pair m : members) o[m.key] = from_element(m.value);
            return o;
        }
    }
    throw std::invalid_argument("unknown JSON element type");
}

}  // namespace

value parse(std::string_view text) {
    thread_local dom::parser parser;  // its buffers are reused; the harness reads on several threads
    dom::element root;
    if (const auto error = parser.parse(text.data(), text.size()).get(root); error != simdjson::SUCCESS) {
        throw std::invalid_argument(std::string(simdjson::error_message(error)));
    }
    return from_element(root);
}

// ---------------------------------------------------------------- writing

namespace {

void write_string(std::string& out, std::string_view s) {
    static constexpr char hex[] = "0123456789abcdef";
    out += '"';
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    out += "\\u00";
                    out += hex[c >> 4];
                    out += hex[c & 15];
                } else {
                    out += ch;
                }
        }
    }
    out += '"';
}

template <typename N>
void write_number(std::string& out, N n) {
    char buf[32];
    const auto end = std::to_chars(buf, buf + sizeof buf, n).ptr;
    out.append(buf, end);
}

void write(std::string& out, const value& v);

void write(std::string& out, const array& a) {
    out += '[';
    bool first = true;
    for (const auto& item : a) {
        if (!first) out += ',';
        first = false;
        write(out, item);
    }
    out += ']';
}

void write(std::string& out, const object& o) {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : o) {
        if (!first) out += ',';
        first = false;
        write_string(out, k);
        out += ':';
        write(out, v);
    }
    out += '}';
}

void write(std::string& out, const value& v) {
    if (v.is_null()) {
        out += "null";
    } else if (const bool* b = v.if_bool()) {
        out += *b ? "true" : "false";
    } else if (const auto* i = v.if_int64()) {
        write_number(out, *i);
    } else if (const auto* u = v.if_uint64()) {
        write_number(out, *u);
    } else if (const double* d = v.if_double()) {
        if (std::isfinite(*d)) {
            write_number(out, *d);
        } else {
            out += "null";  // JSON has no NaN or infinity
        }
    } else if (const auto* s = v.if_string()) {
        write_string(out, *s);
    } else if (const array* a = v.if_array()) {
        write(out, *a);
    } else {
        write(out, v.as_object());
    }
}

}  // namespace

std::string serialize(const value& v) {
    std::string out;
    write(out, v);
    return out;
}

std::string serialize(const object& o) {
    std::string out;
    write(out, o);
    return out;
}

std::string serialize(const array& a) {
    std::string out;
    write(out, a);
    return out;
}

}  // namespace it::json
