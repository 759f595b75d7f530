// A minimal JSON writer that appends to a caller-owned std::string: the only
// allocations are the string's own growth. It does not check that the calls
// form a valid document; the encoders that use it are few and tested.
//
// Each call appends its token, with the comma before it, in one append: a
// response is written per request, and a std::string append is a call and a
// capacity check (a key used to cost five of them and a table lookup per
// byte).
#pragma once

#include <charconv>
#include <concepts>
#include <string>
#include <string_view>

namespace registry::detail {

class json_writer {
public:
    explicit json_writer(std::string& out) noexcept : out_(&out) {}

    json_writer& begin_object() {
        opening('{');
        return *this;
    }
    json_writer& end_object() {
        out_->push_back('}');
        return *this;
    }
    json_writer& begin_array() {
        opening('[');
        return *this;
    }
    json_writer& end_array() {
        out_->push_back(']');
        return *this;
    }

    json_writer& key(std::string_view name) {
        quoted(name, true);
        return *this;
    }

    json_writer& string(std::string_view value) {
        quoted(value, false);
        return *this;
    }

    template <std::integral I>
        requires(!std::same_as<I, bool>)
    json_writer& number(I value) {
        char buf[1 + 24];
        char* begin = buf + 1;
        if (needs_comma()) *--begin = ',';
        char* end = std::to_chars(buf + 1, buf + sizeof buf, value).ptr;
        out_->append(begin, static_cast<std::size_t>(end - begin));  // (pointer, size): no aliasing checks
        return *this;
    }

    // The shortest text that reads back as `value` (finite values only: JSON
    // has no NaN or infinity).
    json_writer& real(double value) {
        char buf[1 + 32];
        char* begin = buf + 1;
        if (needs_comma()) *--begin = ',';
        char* end = std::to_chars(buf + 1, buf + sizeof buf, value).ptr;
        out_->append(begin, static_cast<std::size_t>(end - begin));
        return *this;
    }

    json_writer& boolean(bool value) {
        literal(value ? ",true" : ",false");
        return *this;
    }

    json_writer& null() {
        literal(",null");
        return *this;
    }

    // Members of an object written elsewhere (`"a":1,"b":2`), as they are:
    // a companion's event data kept in the event log (event_record.hpp).
    json_writer& raw_members(std::string_view members) {
        if (members.empty()) return *this;
        if (needs_comma()) out_->push_back(',');
        out_->append(members);
        return *this;
    }

private:
    // A comma is due exactly when the last thing written ended a value or a
    // member, which the last byte tells: no nesting stack to keep.
    bool needs_comma() const noexcept {
        if (out_->empty()) return false;
        const char last = out_->back();
        return last != '{' && last != '[' && last != ':' && last != ',';
    }

    void opening(char bracket) {
        const char token[] = {',', bracket};
        const bool comma = needs_comma();
        out_->append(token + !comma, 1 + comma);
    }

    // `with_comma` is the token preceded by a comma.
    void literal(std::string_view with_comma) {
        if (!needs_comma()) with_comma.remove_prefix(1);
        out_->append(with_comma);
    }

    // [,]"s" (and ':' after a key), with s escaped.
    void quoted(std::string_view s, bool is_key);
    void escaped(std::string_view s);

    std::string* out_;
};

}  // namespace registry::detail
