#include "store/etcd_watch.hpp"

#include "store/base64.hpp"

#include <simdjson.h>

#include <charconv>

namespace registryd {

namespace {

namespace dom = simdjson::dom;
using registry::store_error;

constexpr std::string_view meta_prefix = "meta/";

// etcd's JSON writes int64 fields as strings; a number is taken too.
std::uint64_t u64_of(dom::element e, const char* field) {
    std::string_view s;
    if (e[field].get(s) == simdjson::SUCCESS) {
        std::uint64_t v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (ec != std::errc{} || p != s.data() + s.size()) {
            throw store_error("etcd watch: '" + std::string(field) + "' is not a number: '" + std::string(s) + "'");
        }
        return v;
    }
    std::uint64_t v = 0;
    if (e[field].get(v) == simdjson::SUCCESS) return v;
    return 0;  // absent: etcd leaves zero values out
}

}  // namespace

bool json_object_splitter::feed(std::string_view piece) {
    if (consumed_ > 0) {  // what next() handed out is done with
        buf_.erase(0, consumed_);
        scanned_ -= consumed_;
        begin_ -= std::min(begin_, consumed_);
        consumed_ = 0;
    }
    if (buf_.size() + piece.size() > max_) return false;
    buf_.append(piece);
    return true;
}

std::optional<std::string_view> json_object_splitter::next() {
    while (scanned_ < buf_.size()) {
        const char c = buf_[scanned_++];
        if (in_string_) {
            if (escaped_) {
                escaped_ = false;
            } else if (c == '\\') {
                escaped_ = true;
            } else if (c == '"') {
                in_string_ = false;
            }
            continue;
        }
        if (depth_ == 0) {
            if (c == '{') {
                depth_ = 1;
                begin_ = scanned_ - 1;
            } else if (c != ' ' && c != '\n' && c != '\r' && c != '\t') {
                throw store_error("etcd watch: the stream has bytes outside its JSON objects");
            } else {
                consumed_ = scanned_;
            }
            continue;
        }
        if (c == '"') {
            in_string_ = true;
        } else if (c == '{' || c == '[') {
            ++depth_;
        } else if ((c == '}' || c == ']') && --depth_ == 0) {
            consumed_ = scanned_;
            return std::string_view(buf_).substr(begin_, scanned_ - begin_);
        }
    }
    return std::nullopt;
}

etcd_watch_message parse_watch_message(dom::parser& parser, std::string_view object, std::string_view prefix) {
    dom::element doc;
    if (parser.parse(object.data(), object.size()).get(doc) != simdjson::SUCCESS) {
        throw store_error("etcd watch: a message that is not JSON");
    }
    etcd_watch_message out;
    dom::element error;
    if (doc["error"].get(error) == simdjson::SUCCESS) {
        std::string_view message;
        if (error.get(message) != simdjson::SUCCESS && error["message"].get(message) != simdjson::SUCCESS) {
            message = "no message";
        }
        out.error = std::string(message);
        return out;
    }
    dom::element result;
    if (doc["result"].get(result) != simdjson::SUCCESS) throw store_error("etcd watch: a message without a result");
    bool flag = false;
    out.created = result["created"].get(flag) == simdjson::SUCCESS && flag;
    out.canceled = result["canceled"].get(flag) == simdjson::SUCCESS && flag;
    out.compact_revision = u64_of(result, "compact_revision");
    std::string_view reason;
    if (result["cancel_reason"].get(reason) == simdjson::SUCCESS) out.cancel_reason = std::string(reason);

    dom::array events;
    if (result["events"].get(events) != simdjson::SUCCESS) return out;
    for (dom::element event : events) {
        dom::element kv;
        if (event["kv"].get(kv) != simdjson::SUCCESS) throw store_error("etcd watch: an event without kv");
        const std::uint64_t revision = u64_of(kv, "mod_revision");
        if (revision == 0) throw store_error("etcd watch: an event without mod_revision");
        if (!out.revisions.empty() && revision < out.revisions.back().revision) {
            throw store_error("etcd watch: events out of revision order");
        }
        if (out.revisions.empty() || out.revisions.back().revision != revision) out.revisions.push_back({revision, {}});

        std::string_view k64;
        if (kv["key"].get(k64) != simdjson::SUCCESS) throw store_error("etcd watch: an event without a key");
        auto key = base64_decode(k64);
        if (!key) throw store_error("etcd watch: a key that is not base64");
        if (!key->starts_with(prefix)) continue;
        std::string relative = key->substr(prefix.size());
        if (relative.starts_with(meta_prefix)) continue;

        std::string_view type;
        const bool deleted = event["type"].get(type) == simdjson::SUCCESS && type == "DELETE";
        std::optional<std::string> value;
        if (!deleted) {
            std::string_view v64;
            value = kv["value"].get(v64) == simdjson::SUCCESS ? base64_decode(v64) : std::optional<std::string>{""};
            if (!value) throw store_error("etcd watch: a value that is not base64");
        }
        out.revisions.back().mutations.push_back({std::move(relative), std::move(value)});
    }
    return out;
}

}  // namespace registryd
