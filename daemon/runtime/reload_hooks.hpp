// What SIGHUP reloads (the tokens file, certificates, the audit log...): each
// part that reads a file at start registers a hook here; registryd runs them
// in order, on the io thread, and logs each failure without stopping (the part
// keeps what it had loaded before).
#pragma once

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace registryd {

class reload_hooks {
public:
    // `reload` throws, or returns false with `why` set, when what it reads is
    // invalid: the old state stays.
    using hook = std::function<bool(std::string& why)>;

    void add(std::string what, hook reload) { hooks_.push_back({std::move(what), std::move(reload)}); }

    struct failure {
        std::string what;
        std::string why;
    };
    std::vector<failure> run() const {
        std::vector<failure> failed;
        for (const auto& [what, reload] : hooks_) {
            std::string why;
            try {
                if (!reload(why)) failed.push_back({what, why.empty() ? "refused" : why});
            } catch (const std::exception& e) {
                failed.push_back({what, e.what()});
            }
        }
        return failed;
    }
    std::size_t size() const noexcept { return hooks_.size(); }

private:
    struct entry {
        std::string what;
        hook reload;
    };
    std::vector<entry> hooks_;
};

}  // namespace registryd
