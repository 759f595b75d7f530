// Request frames: the envelope, read with the codec's JSON reader
// (codec/json_reader.hpp); the params by the reader of the action's entry in
// the dispatch table.
#include "request_parser.hpp"

#include "params_input.hpp"
#include "session.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <utility>

namespace registry::protocol {

namespace {

using namespace detail;  // the JSON reader

// 1-128 characters, counted as code points (simdjson has checked the UTF-8).
bool valid_id(std::string_view id) {
    std::size_t chars = 0;
    for (unsigned char c : id) chars += (c & 0xc0) != 0x80;
    return chars >= 1 && chars <= 128;
}

protocol::rejection invalid(std::optional<std::string> id, std::string_view action, std::string message) {
    return {std::move(id), action, error{errc::invalid_request, std::move(message)}};
}

// simdjson refuses a whole document for one integer beyond 64 bits
// (NUMBER_ERROR; BIGINT_ERROR in later versions), which would lose the
// request's id. A frame it refuses is read again with each of those integers
// replaced by this string (U+FDD0, a noncharacter), to answer with the id and
// the path of the first one; the request is never carried out.
constexpr std::string_view big_integer_marker = "\xef\xb7\x90";

// A JSON integer literal (-?[0-9]+) outside int64 and uint64.
bool beyond_64_bits(std::string_view number) {
    const std::string_view digits = number.substr(number.starts_with('-') ? 1 : 0);
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos) return false;
    const char* end = number.data() + number.size();
    if (number.starts_with('-')) {
        std::int64_t v = 0;
        return std::from_chars(number.data(), end, v).ec == std::errc::result_out_of_range;
    }
    std::uint64_t v = 0;
    return std::from_chars(number.data(), end, v).ec == std::errc::result_out_of_range;
}

// The frame with every integer literal beyond 64 bits (outside strings)
// replaced by the marker; nullopt when there is none.
std::optional<std::string> with_big_integers_marked(std::string_view frame) {
    std::string out;
    out.reserve(frame.size());
    bool marked = false;
    for (std::size_t i = 0; i < frame.size();) {
        const char c = frame[i];
        std::size_t j = i + 1;
        if (c == '"') {
            while (j < frame.size() && frame[j] != '"') j += frame[j] == '\\' ? 2 : 1;
            j = std::min(j + 1, frame.size());
        } else if (c == '-' || (c >= '0' && c <= '9')) {
            while (j < frame.size() && frame[j] != '\0' && std::strchr("0123456789.eE+-", frame[j]) != nullptr) ++j;
            const std::string_view number = frame.substr(i, j - i);
            if (beyond_64_bits(number)) {
                out += "\"\\ufdd0\"";
                marked = true;
                i = j;
                continue;
            }
        }
        out.append(frame.substr(i, std::min(j, frame.size()) - i));
        i = j;
    }
    if (!marked) return std::nullopt;
    return out;
}

// The path of the first marker in `e`, rendered into `out`.
bool find_marker(dom::element e, const path& at, std::string& out) {
    switch (e.type()) {
        case dom::element_type::STRING: {
            std::string_view s;
            if (e.get_string().get(s) || s != big_integer_marker) return false;
            at.render(out);
            return true;
        }
        case dom::element_type::ARRAY: {
            dom::array items;
            if (e.get_array().get(items)) return false;
            std::size_t i = 0;
            for (dom::element x : items) {
                if (find_marker(x, at.element(i++), out)) return true;
            }
            return false;
        }
        case dom::element_type::OBJECT: {
            dom::object fields;
            if (e.get_object().get(fields)) return false;
            for (auto [key, value] : fields) {
                if (find_marker(value, at.member(key), out)) return true;
            }
            return false;
        }
        default: return false;
    }
}

}  // namespace

struct request_parser::impl {
    dom::parser parser;

    // A frame that parsed: its envelope, then the params by the action's entry.
    parse_result read_frame(const dom::element& root, const dispatch_table& actions, std::shared_ptr<session>* self);
    // A frame simdjson refused: not JSON, unless that was an integer beyond 64 bits.
    rejection read_with_big_integer(std::string_view frame, const dispatch_table& actions);
};

request_parser::request_parser() : impl_(std::make_unique<impl>()) {}
request_parser::~request_parser() = default;

parse_result request_parser::parse(std::string_view frame, const dispatch_table& actions,
                                   std::shared_ptr<session>* self) {
    dom::element root;
    if (impl_->parser.parse(frame.data(), frame.size()).get(root)) return impl_->read_with_big_integer(frame, actions);
    return impl_->read_frame(root, actions, self);
}

rejection request_parser::impl::read_with_big_integer(std::string_view frame, const dispatch_table& actions) {
    const auto marked = with_big_integers_marked(frame);
    dom::element root;
    if (!marked || parser.parse(marked->data(), marked->size()).get(root)) {
        return invalid(std::nullopt, {}, "frame is not valid JSON");
    }
    // The envelope only (the request is never carried out): its id and action.
    auto read = read_frame(root, actions, nullptr);
    if (auto* r = std::get_if<rejection>(&read); r && !r->id) return std::move(*r);  // no id to answer with
    std::string id;
    std::string_view action;
    if (auto* r = std::get_if<rejection>(&read)) {
        id = std::move(*r->id);
        action = r->action;
    } else {
        // Read again for the id and action it had: a valid envelope has both.
        dom::element id_value;
        std::string_view text;
        if (!root["id"].get(id_value) && !id_value.get_string().get(text)) id = text;
        std::string_view name;
        dom::element action_value;
        if (!root["action"].get(action_value) && !action_value.get_string().get(name)) {
            if (const action_entry* e = actions.find(name)) action = e->name;
        }
    }
    if (id == big_integer_marker) return invalid(std::nullopt, {}, "id: must be a string of 1-128 characters");
    std::string field;
    find_marker(root, path{}, field);
    field += ": must be an integer of at most 64 bits";
    return invalid(std::move(id), action, std::move(field));
}

parse_result request_parser::impl::read_frame(const dom::element& root, const dispatch_table& actions,
                                              std::shared_ptr<session>* self) {
    if (!root.is_object()) return invalid(std::nullopt, {}, "frame is not a JSON object");

    // The id first: every later rejection carries it.
    dom::element id_value;
    if (root["id"].get(id_value)) return invalid(std::nullopt, {}, "id: is required");
    std::string_view id_text;
    if (id_value.get_string().get(id_text) || !valid_id(id_text)) {
        return invalid(std::nullopt, {}, "id: must be a string of 1-128 characters");
    }
    std::string id(id_text);

    const path top;
    static constexpr std::string_view names[] = {"id", "type", "action", "params"};
    members m{top, names};
    decoder d;
    d.max_string = max_request_string;
    std::string type;
    std::string action;
    if (!open(d, root, m) || !required(d, m, "type", type)) {
        return invalid(std::move(id), {}, std::move(d.problem));
    }
    if (type != "request") return invalid(std::move(id), {}, R"(type: must be "request")");
    if (!required(d, m, "action", action)) return invalid(std::move(id), {}, std::move(d.problem));
    const action_entry* entry = actions.find(action);
    if (!entry) return rejection{std::move(id), {}, error{errc::unknown_action, "unknown action '" + action + "'"}};
    // The permission first: a caller without it learns `forbidden`, not
    // whether the subsystem is there.
    if (self && !(*self)->caller().permissions.allows(entry->family)) {
        return rejection{std::move(id), entry->name,
                         error{errc::forbidden, "'" + (*self)->caller().who.name + "' lacks the permission '" +
                                                    std::string(to_string(entry->family)) + "' that " +
                                                    std::string(entry->name) + " needs"}};
    }
    if (self) {
        if (auto limited = (*self)->admit(entry->family)) return rejection{std::move(id), entry->name, std::move(*limited)};
    }
    if (entry->relayed && self && (*self)->relays()) return relayed_request{std::move(id), entry->name};
    if (!entry->start) return rejection{std::move(id), entry->name, error{entry->absent_code, std::string(entry->absent)}};
    const path params_at = top.member("params");
    const params_element params = m.get("params");
    params_input in{d, params, params_at};
    task<outcome> answer;
    if (!entry->start(entry->module, in, self, id, answer)) return invalid(std::move(id), entry->name, std::move(d.problem));
    return answer;
}

}  // namespace registry::protocol
