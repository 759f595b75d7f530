// A finished REPL execution as JSON: the data of repl_finished, of repl_result
// and of a repl_history entry (docs/protocol.md, "REPL execution"), and the
// record result_store keeps in the store (keyspace::repl_results), one format.
#pragma once

#include "codec/json_writer.hpp"

#include <registry/repl/execution.hpp>
#include <registry/result.hpp>

#include <string>
#include <string_view>

namespace registry::repl::detail {

enum class outcome_view {
    finished,  // repl_finished: what the run did
    result,    // repl_result: that, plus who, when and "state": "finished"
    summary,   // repl_history: repl_result without the output (stdout, stderr, compile output)
};

// The members of the object (the caller opens and closes it).
void write_outcome(::registry::detail::json_writer& w, const outcome& o, outcome_view view);

// The stored record: the result view, with absent values left out.
std::string encode_outcome_record(const outcome& o);
result<outcome> decode_outcome_record(std::string_view json);

}  // namespace registry::repl::detail
