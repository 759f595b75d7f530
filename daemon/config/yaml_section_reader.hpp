// Reading one section of registryd's YAML configuration, for the sections
// read outside config.cpp (auth and http, repl, notifications): every
// problem is a config_error naming the file, the line and the key's path.
#pragma once

#include "config/config.hpp"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace registryd {

class yaml_section_reader {
public:
    // `origin`: what the messages name (the configuration file).
    explicit yaml_section_reader(std::string_view origin) : origin_(origin) {}

    [[noreturn]] void fail(const YAML::Node& n, const std::string& path, const std::string& what) const {
        std::string s(origin_);
        if (!n.Mark().is_null()) s += ":" + std::to_string(n.Mark().line + 1);
        throw config_error(s + ": " + path + ": " + what);
    }

    using key_handler = std::function<bool(const std::string& key, const YAML::Node& value, const std::string& path)>;

    // Calls `h` with each key; a key it does not take (false) is an error.
    // With `null_is_empty`, a key given no value reads as an empty mapping.
    void mapping(const YAML::Node& v, const std::string& path, const key_handler& h, bool null_is_empty = false) const {
        if (null_is_empty && v.IsNull()) return;
        if (!v.IsMap()) fail(v, path, "must be a mapping");
        for (const auto& kv : v) {
            if (!kv.first.IsScalar()) fail(kv.first, path, "keys must be strings");
            const std::string k = kv.first.Scalar();
            const std::string p = path + "." + k;
            if (!h(k, kv.second, p)) fail(kv.first, p, "unknown key");
        }
    }

    std::string text(const YAML::Node& v, const std::string& path, bool allow_empty = false) const {
        if (!v.IsScalar()) fail(v, path, "must be a string");
        if (!allow_empty && v.Scalar().empty()) fail(v, path, "must not be empty");
        return v.Scalar();
    }

    std::vector<std::string> texts(const YAML::Node& v, const std::string& path, bool allow_empty = false) const {
        if (!v.IsSequence()) fail(v, path, "must be a list of strings");
        std::vector<std::string> out;
        for (std::size_t i = 0; i < v.size(); ++i) {
            out.push_back(text(v[i], path + "[" + std::to_string(i) + "]", allow_empty));
        }
        return out;
    }

    std::uint64_t number(const YAML::Node& v, const std::string& path, std::uint64_t min, std::uint64_t max) const {
        const std::string s = text(v, path);
        std::uint64_t n = 0;
        auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
        if (ec != std::errc{} || end != s.data() + s.size()) fail(v, path, "must be a non-negative integer");
        if (n < min || n > max) fail(v, path, "must be " + std::to_string(min) + "-" + std::to_string(max));
        return n;
    }

    bool boolean(const YAML::Node& v, const std::string& path) const {
        const std::string s = text(v, path);
        if (s == "true") return true;
        if (s == "false") return false;
        fail(v, path, "must be true or false");
    }

private:
    std::string origin_;
};

}  // namespace registryd
