#include "deploy/target_scripts.hpp"

#include "deploy/command_output.hpp"

#include <filesystem>

namespace registry::deploy {

std::string entry_of(const std::string& path) { return std::filesystem::path(path).filename().string(); }

std::optional<std::string> requirement_script(const package_manifest& m) {
    if (m.required_commands.empty() && m.required_libraries.empty()) return std::nullopt;
    std::string s = "for c in";
    for (const auto& c : m.required_commands) s += " " + quote(c);
    s += "; do command -v \"$c\" >/dev/null 2>&1 || echo \"requires.commands: '$c' not found\"; done\n"
         "for l in";
    for (const auto& l : m.required_libraries) s += " " + quote(l);
    s += "; do\n"
         "  ldconfig -p 2>/dev/null | awk -v l=\"$l\" '$1 == l {f = 1} END {exit !f}' && continue\n"
         "  found=\n"
         "  for d in /lib /lib64 /usr/lib /usr/lib64 /usr/local/lib /lib/*-linux-gnu /usr/lib/*-linux-gnu; do\n"
         "    [ -e \"$d/$l\" ] && found=1\n"
         "  done\n"
         "  [ -n \"$found\" ] || echo \"requires.libraries: '$l' not found\"\n"
         "done\n";
    return s;
}

std::string claim_script(const std::string& prefix, const installed& at, bool known) {
    const std::string home = entry_of(at.home);
    const std::string dir = entry_of(at.dir);
    return
        "p=" + quote(prefix) + "; n=" + quote(at.manifest.name) + "; h=" + quote(home) + "; v=" + quote(dir) +
        "\n"
        "taken() {\n"
        "  if [ -f \"$p/.owner/$1\" ]; then\n"
        "    [ \"$(cat \"$p/.owner/$1\")\" = \"$n\" ] && return 1\n"
        "    echo \"$p/$1 belongs to package '$(cat \"$p/.owner/$1\")'\"; return 0\n"
        "  fi\n"
        "  if [ -e \"$p/$1\" ] || [ -L \"$p/$1\" ]; then\n"
        "    [ \"$2\" = 1 ] && return 1\n"
        "    echo \"$p/$1 exists and does not belong to package '$n'\"; return 0\n"
        "  fi\n"
        "  return 1\n"
        "}\n"
        "known=" + std::string(known ? "1" : "0") + "\n"
        "taken \"$h\" \"$known\" && exit 4\n"
        "listed=0; [ \"$known\" = 1 ] && grep -qxF \"$v\" \"$p/$h/installed\" 2>/dev/null && listed=1\n"
        "taken \"$v\" \"$listed\" && exit 4\n"
        "mkdir -p \"$p/.owner\" || exit 1\n"
        "for e in \"$h\" \"$v\"; do\n"
        "  [ -f \"$p/.owner/$e\" ] || (set -C; printf '%s\\n' \"$n\" > \"$p/.owner/$e\") 2>/dev/null\n"
        "  [ \"$(cat \"$p/.owner/$e\" 2>/dev/null)\" = \"$n\" ] && continue\n"
        "  echo \"$p/$e belongs to package '$(cat \"$p/.owner/$e\")'\"; exit 4\n"
        "done\n";
}

std::string prepare_script(const std::string& prefix, const std::string& upload_to) {
    return "mkdir -p " + quote(prefix) + " && rm -rf " + quote(upload_to);
}

std::string install_script(const installed& at, const std::string& upload_to) {
    return "if [ -e " + quote(at.dir) + " ]; then\n"
           "  if [ \"$(readlink " + quote(at.home + "/current") + ")\" = " + quote(at.dir) + " ]; then rm -rf " +
           quote(upload_to) + "; exit 3; fi\n"
           "  rm -rf " + quote(at.dir) + "\n"
           "fi\n"
           "mv -T " + quote(upload_to) + " " + quote(at.dir) + " || { rm -rf -- " + quote(upload_to) + "; exit 1; }\n"
           "mkdir -p " + quote(at.home) + " || exit 1\n"
           "grep -qxF " + quote(install_dir_name(at.manifest)) + " " + quote(at.home + "/installed") + " 2>/dev/null || echo " +
           quote(install_dir_name(at.manifest)) + " >> " + quote(at.home + "/installed") + "\n"
           "readlink " + quote(at.home + "/current") + " || true\n";
}

std::string switch_script(const std::string& home, const std::string& dir) {
    return "ln -sfn " + quote(dir) + " " + quote(home + "/current.new") + " && mv -T " + quote(home + "/current.new") +
           " " + quote(home + "/current");
}

std::string first_install_removal_script(const std::string& prefix, const std::string& home, const std::string& dir) {
    return "p=" + quote(prefix) + "; h=" + quote(entry_of(home)) + "; v=" + quote(entry_of(dir)) + "\n"
           "rm -rf -- \"$p/$v\" && rm -f \"$p/.owner/$v\"\n"
           "[ \"$(readlink \"$p/$h/current\")\" = \"$p/$v\" ] && rm -f \"$p/$h/current\"\n"
           "if [ -f \"$p/$h/installed\" ]; then\n"
           "  grep -vxF \"$v\" \"$p/$h/installed\" > \"$p/$h/installed.new\"\n"
           "  mv -f \"$p/$h/installed.new\" \"$p/$h/installed\"\n"
           "fi\n"
           "if [ ! -s \"$p/$h/installed\" ] && [ ! -L \"$p/$h/current\" ]; then rm -rf -- \"$p/$h\" && rm -f \"$p/.owner/$h\"; fi\n";
}

std::string versions_removal_script(const std::string& prefix, const std::string& name, const std::string& home) {
    return "p=" + quote(prefix) + "; n=" + quote(name) + "\n"
           "ours() { [ ! -e \"$p/.owner/$1\" ] || [ \"$(cat \"$p/.owner/$1\")\" = \"$n\" ]; }\n"
           "drop() { if ours \"$1\"; then rm -rf -- \"$p/$1\" && rm -f \"$p/.owner/$1\"; fi; }\n"
           "if [ -f " + quote(home + "/installed") + " ]; then\n"
           "  while IFS= read -r v; do case \"$v\" in ''|*/*|.*) ;; *) drop \"$v\" || exit 1;; esac; done < " +
               quote(home + "/installed") + "\n"
           "fi\n"
           "drop " + quote(entry_of(home));
}

std::string kill_script(const std::string& dir) {
    // One find and one grep for the whole process table: a loop forking per
    // process took seconds on a busy host, and past the script timeout.
    return "d=" + quote(dir) + "\n"
           "g=$(printf '%s' \"$d\" | sed 's/[][*?\\\\]/\\\\&/g')\n"
           "scan() {\n"
           "  { find /proc/[0-9]*/cwd -maxdepth 0 \\( -lname \"$g\" -o -lname \"$g/*\" \\) 2>/dev/null\n"
           "    grep -lzsxF \"PACKAGE_DIR=$d\" /proc/[0-9]*/environ 2>/dev/null\n"
           "  } | sed -n 's|^/proc/\\([0-9]*\\)/.*|\\1|p' | grep -vxF \"$$\" | sort -un\n"
           "}\n"
           "pids=$(scan)\n"
           "[ -n \"$pids\" ] || { echo \"no process of $d was running\"; exit 0; }\n"
           "kill -9 $pids 2>/dev/null\n"
           "echo \"killed\" $pids\n"
           "i=0\n"
           "while left=$(scan); [ -n \"$left\" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done\n"
           "[ -z \"$left\" ] || { echo \"still running after SIGKILL:\" $left; exit 1; }\n";
}

}  // namespace registry::deploy
