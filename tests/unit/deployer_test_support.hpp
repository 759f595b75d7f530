// Fakes for the deployer's unit tests: a deploy target that answers every
// command at once, as scripted, and an unpacker that yields a set manifest.
#pragma once

#include <registry/deploy/deployer.hpp>

#include <algorithm>
#include <deque>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace registry::test {

using deploy::package_manifest;
using deploy::unpack_request;
using deploy::unpacked_package;

// Answers every command at once: the health script with the next queued exit
// code (then `health_default`), stop.sh with the next of `stop_exits` (0 when
// none are left, with the output "cannot stop" otherwise), the claim of a
// package's paths with `claim_answer` if set, everything else with 0.
// Unreachable when `down` is set; an upload fails when `upload_fails` is.
// With `track_current`, the `current` link is kept as the install script
// sets it and read back where the deployer reads it. Records what ran, and
// counts the round trips a remote target would make (a command, or a
// sequence of them).
class scripted_target final : public deploy_target {
public:
    explicit scripted_target(std::string name = "fake") : name_(std::move(name)) {}

    std::deque<int> health_exits;
    int health_default = 2;
    std::deque<int> stop_exits;
    std::optional<command_result> claim_answer;
    bool down = false;
    bool upload_fails = false;
    bool track_current = false;
    std::string current;
    std::vector<std::string> ran;
    std::vector<std::string> package_scripts;  // the commands marked target_command::package_script
    int round_trips = 0;

    const std::string& name() const override { return name_; }
    location where() const override { return {}; }
    std::string endpoint_address() const override { return "127.0.0.1"; }
    std::string prefix() const override { return "/srv"; }

    task<result<command_result>> run(target_command c) override {
        if (down) co_return fail(errc::unavailable, "ssh fake: cannot connect: Connection refused");
        if (!in_sequence_) ++round_trips;
        ran.push_back(c.script);
        if (c.package_script) package_scripts.push_back(c.script);
        command_result r{0, false, {}, {}};
        if (track_current) {
            if (c.script.rfind("ln -sfn '", 0) == 0) {
                current = c.script.substr(9, c.script.find('\'', 9) - 9);
            } else if (c.script.find("mv -T") != std::string::npos && c.script.find("readlink") != std::string::npos) {
                if (!current.empty()) r.stdout_text = current + "\n";  // readlink prints nothing for no link
            } else if (c.script.find("/current'") != std::string::npos && c.script.rfind("rm -f ", 0) == 0) {
                current.clear();
            }
        }
        if (c.script.find("scripts/health.sh") != std::string::npos) {
            r.exit_code = health_exits.empty() ? health_default : health_exits.front();
            if (!health_exits.empty()) health_exits.pop_front();
            r.stdout_text = r.exit_code == 0 ? "ok" : "not yet";
        }
        if (claim_answer && c.script.find("taken() {") != std::string::npos) co_return *claim_answer;
        if (c.script.find("scripts/stop.sh") != std::string::npos && !stop_exits.empty()) {
            r.exit_code = stop_exits.front();
            stop_exits.pop_front();
            r.stderr_text = "cannot stop";
        }
        co_return r;
    }
    // One round trip; the commands run one by one, as the default does.
    task<std::vector<result<command_result>>> run_sequence(std::vector<sequenced_command> commands) override {
        ++round_trips;
        in_sequence_ = true;
        auto out = co_await deploy_target::run_sequence(std::move(commands));
        in_sequence_ = false;
        co_return out;
    }
    task<result<void>> upload(std::filesystem::path, std::string to) override {
        ran.push_back("upload " + to);
        if (upload_fails) co_return fail(errc::unavailable, "ssh fake: connection lost during writing");
        co_return result<void>{};
    }

    bool ran_matching(std::string_view needle) const {
        return std::any_of(ran.begin(), ran.end(), [&](const std::string& s) { return s.find(needle) != std::string::npos; });
    }

private:
    std::string name_;
    bool in_sequence_ = false;
};

class manifest_unpacker final : public package_unpacker {
public:
    package_manifest manifest;
    result<std::filesystem::path> admit(const std::filesystem::path& requested) override { return requested; }
    task<result<unpacked_package>> unpack(unpack_request) override { co_return unpacked_package{manifest, 5, 100}; }
    void discard(const std::filesystem::path&) override {}
};

}  // namespace registry::test
