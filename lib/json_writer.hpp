// A minimal JSON writer that appends to a caller-owned std::string: the only
// allocations are the string's own growth. It does not check that the calls
// form a valid document; the encoders that use it are few and tested.
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
        separate();
        out_->push_back('{');
        return *this;
    }
    json_writer& end_object() {
        out_->push_back('}');
        return *this;
    }
    json_writer& begin_array() {
        separate();
        out_->push_back('[');
        return *this;
    }
    json_writer& end_array() {
        out_->push_back(']');
        return *this;
    }

    json_writer& key(std::string_view name) {
        separate();
        quoted(name);
        out_->push_back(':');
        return *this;
    }

    json_writer& string(std::string_view value) {
        separate();
        quoted(value);
        return *this;
    }

    template <std::integral I>
        requires(!std::same_as<I, bool>)
    json_writer& number(I value) {
        separate();
        char buf[24];
        auto end = std::to_chars(buf, buf + sizeof buf, value).ptr;
        out_->append(buf, end);
        return *this;
    }

    json_writer& boolean(bool value) {
        separate();
        out_->append(value ? "true" : "false");
        return *this;
    }

    json_writer& null() {
        separate();
        out_->append("null");
        return *this;
    }

private:
    // A comma is due exactly when the last thing written ended a value or a
    // member, which the last byte tells: no nesting stack to keep.
    void separate() {
        if (out_->empty()) return;
        const char last = out_->back();
        if (last != '{' && last != '[' && last != ':' && last != ',') out_->push_back(',');
    }

    void quoted(std::string_view s);

    std::string* out_;
};

}  // namespace registry::detail
