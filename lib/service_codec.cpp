// The stored record is the protocol's service object, written by the same
// code as responses and events. Decoding lives in protocol/request_parser.cpp,
// the one translation unit that includes simdjson.
#include "service_codec.hpp"

#include "json_writer.hpp"
#include "protocol/service_writer.hpp"

namespace registry::detail {

std::string encode_service_record(const service_instance& s) {
    std::string out;
    out.reserve(protocol::service_json_capacity(s));
    json_writer w(out);
    protocol::write_service(w, s);
    return out;
}

}  // namespace registry::detail
