#include "container_codec.hpp"

#include "json_writer.hpp"
#include "protocol/container_writer.hpp"

namespace registry::detail {

std::string encode_container_record(const managed_container& c) {
    std::string out;
    out.reserve(256);
    json_writer w(out);
    protocol::write_container(w, c, protocol::container_view::full);
    return out;
}

}  // namespace registry::detail
