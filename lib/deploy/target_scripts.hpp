// The sh scripts the deployer runs on a target to lay a package out (see
// deployer.hpp for the layout): each takes the paths it works on and is run
// as one command (deployer::impl::shell).
#pragma once

#include "deploy/installed.hpp"

#include <registry/deploy/package_manifest.hpp>

#include <optional>
#include <string>

namespace registry::deploy {

// The last component of a path under the prefix (its entry in .owner).
std::string entry_of(const std::string& path);

// The check of requires.commands and requires.libraries on the target:
// prints a line for each one missing. None when the manifest requires none.
std::optional<std::string> requirement_script(const package_manifest& m);

// Each home and version directory under a prefix belongs to one package
// name, written in {prefix}/.owner/{directory} (no sanitized name starts
// with '.'): names that sanitize alike ("a.b", "a_b") or that meet a
// version at a '-' ("app-1" and "app" 1) cannot share a path, so no package
// installs into or removes another's. An entry that exists unclaimed (an
// earlier registryd's) is adopted only by the deployment that knows it
// (`known`). Writes the claims; exit 4 and the reason when a path is taken.
std::string claim_script(const std::string& prefix, const installed& at, bool known);

// Makes the prefix and clears the upload's staging directory.
std::string prepare_script(const std::string& prefix, const std::string& upload_to);

// Moves the uploaded tree into the version's directory and lists it in
// {home}/installed; prints the version `current` points at (nothing for a
// first install). Exit 3: this very version is the running one; replacing
// its directory under it is not a deploy.
std::string install_script(const installed& at, const std::string& upload_to);

// Points {home}/current at `dir`, by rename(2).
std::string switch_script(const std::string& home, const std::string& dir);

// What a first deploy that failed installed: its directory, its line in
// `installed`, `current` if it points there, and the home if that was all.
std::string first_install_removal_script(const std::string& prefix, const std::string& home, const std::string& dir);

// Every version listed in {home}/installed, and the home: only what package
// `name` claimed (or nobody did: an earlier registryd's).
std::string versions_removal_script(const std::string& prefix, const std::string& name, const std::string& home);

// Kills (SIGKILL) the processes of a version: those whose working directory
// is inside `dir` or whose environment has its PACKAGE_DIR (what start.sh
// started inherits it). Fails, naming them, if any is left. Needs GNU find
// and grep (-lname, -z) on the target.
std::string kill_script(const std::string& dir);

}  // namespace registry::deploy
