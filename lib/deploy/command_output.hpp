// Reading what a command on a target printed, and writing sh words: the
// text the deployer's stages share.
#pragma once

#include <registry/ports/clock.hpp>
#include <registry/ports/deploy_target.hpp>
#include <registry/service.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace registry::deploy {

// A single-quoted sh word.
std::string quote(std::string_view s);

// Without trailing newlines, carriage returns and blanks.
std::string trimmed(std::string s);

// stdout, then stderr, then "(timed out)", each trimmed; the last 4 KiB.
std::string output_of(const command_result& r);

// The non-empty lines.
std::vector<std::string> lines_of(const std::string& text);

// "1.5s".
std::string seconds_text(milliseconds d);

// A health script's verdict, by Habitat's health hook convention: 0 healthy,
// 1 warning, 2 critical (and a timeout), anything else unknown.
health_status status_of(const command_result& r);

}  // namespace registry::deploy
