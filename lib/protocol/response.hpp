// Response frames: {"id":...,"type":"response","data":{...}} on success,
// {"id":...,"type":"response","error":{"code":...,"message":...}} otherwise.
#pragma once

#include "codec/json_writer.hpp"

#include <registry/error.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace registry::protocol {

// `write_data(json_writer&)` writes the data value, of about `data_capacity`
// bytes at most (reserved up front with the envelope, so the text is
// allocated once).
template <typename WriteData>
std::string encode_response(std::string_view id, WriteData&& write_data, std::size_t data_capacity = 200) {
    std::string text;
    text.reserve(40 + id.size() + data_capacity);
    detail::json_writer w(text);
    w.begin_object().key("id").string(id).key("type").string("response").key("data");
    write_data(w);
    w.end_object();
    return text;
}

// A null `id` is sent as JSON null: the frame had no readable id.
std::string encode_error(const std::string* id, const error& err);

}  // namespace registry::protocol
