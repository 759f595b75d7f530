#include "response.hpp"

namespace registry::protocol {

std::string encode_error(const std::string* id, const error& err) {
    std::string text;
    text.reserve(96 + err.message.size());
    detail::json_writer w(text);
    w.begin_object().key("id");
    if (id) {
        w.string(*id);
    } else {
        w.null();
    }
    w.key("type").string("response");
    w.key("error").begin_object().key("code").string(to_string(err.code)).key("message").string(err.message);
    if (err.code == errc::rate_limited) w.key("retry_after_ms").number(err.retry_after_ms);
    w.end_object().end_object();
    return text;
}

}  // namespace registry::protocol
