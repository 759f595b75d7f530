// The upload: the prefix prepared (its staging directory cleared), the
// unpacked package copied to the target; what arrived of a failed upload is
// removed.
#include "deploy/command_output.hpp"
#include "deploy/deployment.hpp"
#include "deploy/target_scripts.hpp"

namespace registry::deploy {

task<result<void>> deployer::impl::upload(deployment& d) {
    deploy_target& t = d.t;
    auto prepared = co_await must(t, prepare_script(t.prefix(), d.upload_to), "preparing the prefix");
    if (!prepared) co_return d.failed(prepared.err());
    auto uploaded = co_await t.upload(d.staged.path, d.upload_to);
    if (!uploaded) {
        // What arrived before the failure is nobody's: remove it (best effort,
        // the target may be what failed).
        auto cleaned = co_await shell(t, "rm -rf -- " + quote(d.upload_to));
        (void)cleaned;
        co_return d.failed(uploaded.err());
    }
    co_return result<void>{};
}

}  // namespace registry::deploy
