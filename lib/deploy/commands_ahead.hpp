// A deploy target as one operation sees it after running some of its
// commands ahead, as one sequence (deploy_target::run_sequence): a stage
// that runs a command of that sequence gets the result it had, in order; any
// other command, or one after the sequence stopped, runs on the target. The
// stages stay written one command at a time, and a target where each command
// costs a round trip (SSH) pays it once per sequence.
#pragma once

#include <registry/ports/deploy_target.hpp>

#include <deque>
#include <string>
#include <utility>
#include <vector>

namespace registry::deploy {

class commands_ahead final : public deploy_target {
public:
    explicit commands_ahead(deploy_target& target) : target_(target) {}

    // Runs `commands` now; their results wait for the stages that run them.
    task<void> run_ahead(std::vector<sequenced_command> commands) {
        ahead_.clear();
        std::vector<std::string> scripts;
        for (const auto& c : commands) scripts.push_back(c.command.script);
        auto results = co_await target_.run_sequence(std::move(commands));
        for (std::size_t i = 0; i < results.size() && i < scripts.size(); ++i) {
            ahead_.emplace_back(std::move(scripts[i]), std::move(results[i]));
        }
    }

    deploy_target& underlying() const { return target_; }

    const std::string& name() const override { return target_.name(); }
    location where() const override { return target_.where(); }
    std::string endpoint_address() const override { return target_.endpoint_address(); }
    std::string prefix() const override { return target_.prefix(); }

    task<result<command_result>> run(target_command command) override {
        if (!ahead_.empty() && ahead_.front().first == command.script) {
            auto r = std::move(ahead_.front().second);
            ahead_.pop_front();
            co_return r;
        }
        ahead_.clear();  // the operation went another way: what is left is not its
        co_return co_await target_.run(std::move(command));
    }

    task<result<void>> upload(std::filesystem::path from, std::string to) override {
        ahead_.clear();
        co_return co_await target_.upload(std::move(from), std::move(to));
    }

private:
    deploy_target& target_;
    std::deque<std::pair<std::string, result<command_result>>> ahead_;
};

}  // namespace registry::deploy
