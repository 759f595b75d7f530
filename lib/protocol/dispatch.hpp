// The dispatch table: every action of the protocol by name, each with the
// permission family it needs, the reader of its params and its handler.
// Built at start-up: the server registers the services module and the
// optional subsystems' actions as absent; the embedder registers each
// subsystem it has (protocol/containers.hpp, deploy.hpp, repl.hpp), which
// replaces the absent entries. An absent action answers `unavailable`.
#pragma once

#include <registry/protocol/connection.hpp>
#include <registry/protocol/permission.hpp>
#include <registry/task.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace registry::protocol {

class session;
struct params_input;  // params_input.hpp

struct action_entry {
    std::string_view name;  // a literal: outcomes keep it
    permission_family family;
    // Reads the params from `in`: false, with the problem in `in`, if they are
    // invalid. With a session, also makes `out`, the task that answers the
    // request (not started); without one, only reads (the parser's fuzzer).
    bool (*start)(void* module, params_input& in, std::shared_ptr<session>* self, std::string& id,
                  task<outcome>& out) = nullptr;
    void* module = nullptr;
    // With start null: the subsystem is absent, and this is the answer.
    std::string_view absent;
    errc absent_code = errc::unavailable;
    // On a replica (server::serve_replica): sent on to the writer by a
    // connection that has a relay (protocol/relay.hpp).
    bool relayed = false;
};

class dispatch_table {
public:
    // Replaces an entry of the same name.
    void add(const action_entry& e);
    // Entries of a subsystem that is absent: unavailable, with `why`.
    void add_absent(std::initializer_list<std::string_view> names, permission_family family, std::string_view why);
    // Every absent entry answers `code` with `why` (a literal) instead.
    void answer_absent(errc code, std::string_view why);
    // Every entry outside `local` is relayed (action_entry::relayed).
    void relay_all_but(permission_family local);
    const action_entry* find(std::string_view name) const noexcept;

private:
    std::vector<action_entry> entries_;  // sorted by name: a lookup is a binary search on string_views
};

// What a module is to the server: something it owns until it is destroyed.
struct module {
    virtual ~module() = default;
};

}  // namespace registry::protocol
