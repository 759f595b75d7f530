// The Docker Engine API's wire pieces that are not JSON (docker_engine.hpp,
// namespace docker): the framed output stream, line splitting, RFC 3339
// times, URL encoding and image references.
#include "engine/docker_engine.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>

namespace registryd::docker {

namespace {

// Appends to a buffer whose first `pos` bytes are consumed. Those are dropped
// when they are all of it, or most of a large one: a long stream neither grows
// without bound nor moves its tail on every piece.
void append_unconsumed(std::string& buf, std::size_t& pos, std::string_view bytes) {
    if (pos == buf.size()) {
        buf.clear();
        pos = 0;
    } else if (pos > 64 * 1024 && pos * 2 > buf.size()) {
        buf.erase(0, pos);
        pos = 0;
    }
    buf.append(bytes);
}

}  // namespace

void frame_demuxer::feed(std::string_view bytes) { append_unconsumed(buf_, pos_, bytes); }

namespace {

// Could `h` (all or the start of 8 bytes) be a frame header?
bool plausible_header(std::string_view h) {
    if (h.empty()) return true;
    const auto kind = static_cast<unsigned char>(h[0]);
    if (kind > 2) return false;
    for (std::size_t i = 1; i < std::min<std::size_t>(4, h.size()); ++i) {
        if (h[i] != '\0') return false;
    }
    return true;
}

}  // namespace

std::optional<registry::output_chunk> frame_demuxer::next() {
    for (;;) {
        if (corrupt_) return std::nullopt;
        const std::size_t avail = buf_.size() - pos_;
        if (mode_ == mode::raw) {
            if (avail == 0) return std::nullopt;
            registry::output_chunk c{registry::output_stream::out, buf_.substr(pos_)};
            pos_ = buf_.size();
            return c;
        }
        if (remaining_ > 0) {
            if (avail == 0) return std::nullopt;
            const std::size_t n = std::min(avail, remaining_);
            registry::output_chunk c{current_, buf_.substr(pos_, n)};
            pos_ += n;
            remaining_ -= n;
            return c;
        }
        const std::string_view head = std::string_view(buf_).substr(pos_, std::min<std::size_t>(avail, 8));
        if (!plausible_header(head)) {
            if (mode_ == mode::undecided) {
                mode_ = mode::raw;
                continue;
            }
            corrupt_ = true;
            return std::nullopt;
        }
        if (head.size() < 8) return std::nullopt;
        mode_ = mode::framed;
        current_ = static_cast<unsigned char>(head[0]) == 2 ? registry::output_stream::err : registry::output_stream::out;
        remaining_ = (std::size_t{static_cast<unsigned char>(head[4])} << 24) |
                     (std::size_t{static_cast<unsigned char>(head[5])} << 16) |
                     (std::size_t{static_cast<unsigned char>(head[6])} << 8) |
                     std::size_t{static_cast<unsigned char>(head[7])};
        pos_ += 8;
    }
}

std::optional<registry::output_chunk> frame_demuxer::finish() {
    if (auto c = next()) return c;
    // A short stream that never got as far as a whole header: raw output.
    if (mode_ == mode::undecided && pos_ < buf_.size()) {
        registry::output_chunk c{registry::output_stream::out, buf_.substr(pos_)};
        pos_ = buf_.size();
        return c;
    }
    return std::nullopt;
}

void line_splitter::feed(std::string_view bytes) { append_unconsumed(buf_, pos_, bytes); }

std::optional<std::string> line_splitter::next() {
    const auto nl = buf_.find('\n', pos_);
    if (nl == std::string::npos) return std::nullopt;
    std::size_t end = nl;
    if (end > pos_ && buf_[end - 1] == '\r') --end;
    std::string line = buf_.substr(pos_, end - pos_);
    pos_ = nl + 1;
    return line;
}

std::optional<std::string> line_splitter::finish() {
    if (auto l = next()) return l;
    if (pos_ == buf_.size()) return std::nullopt;
    std::string line = buf_.substr(pos_);
    pos_ = buf_.size();
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

namespace {

bool digits(std::string_view s, std::size_t at, std::size_t n, int& out) {
    if (at + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

}  // namespace

std::optional<registry::time_point> parse_time(std::string_view s) {
    using namespace std::chrono;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
    if (!digits(s, 0, 4, y) || s.size() < 20 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
        !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s, 11, 2, h) ||
        s[13] != ':' || !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, sec)) {
        return std::nullopt;
    }
    if (y <= 1) return std::nullopt;  // Go's zero time: never
    const year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!ymd.ok() || h > 23 || mi > 59 || sec > 60) return std::nullopt;
    std::size_t i = 19;
    int millis = 0;
    if (i < s.size() && s[i] == '.') {
        ++i;
        int scale = 100;
        const std::size_t start = i;
        while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
            millis += (s[i] - '0') * scale;
            scale /= 10;
            ++i;
        }
        if (i == start) return std::nullopt;
    }
    minutes offset{0};
    if (i < s.size() && (s[i] == 'Z' || s[i] == 'z')) {
        ++i;
    } else if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        int oh = 0, om = 0;
        if (!digits(s, i + 1, 2, oh) || i + 3 >= s.size() || s[i + 3] != ':' || !digits(s, i + 4, 2, om)) {
            return std::nullopt;
        }
        offset = hours{oh} + minutes{om};
        if (s[i] == '-') offset = -offset;
        i += 6;
    } else {
        return std::nullopt;
    }
    if (i != s.size()) return std::nullopt;
    return time_point_cast<milliseconds>(sys_days{ymd} + hours{h} + minutes{mi} + seconds{sec} + milliseconds{millis} -
                                         offset);
}

std::string url_encode(std::string_view s) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
            out += ch;
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::pair<std::string, std::string> split_reference(std::string_view reference) {
    if (reference.find('@') != std::string_view::npos) return {std::string(reference), ""};
    const auto slash = reference.rfind('/');
    const auto colon = reference.rfind(':');
    if (colon != std::string_view::npos && (slash == std::string_view::npos || colon > slash)) {
        return {std::string(reference.substr(0, colon)), std::string(reference.substr(colon + 1))};
    }
    return {std::string(reference), "latest"};
}

}  // namespace registryd::docker
