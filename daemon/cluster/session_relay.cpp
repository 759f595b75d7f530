#include "cluster/session_relay.hpp"

#include <registry/error.hpp>

#include <utility>

namespace registryd {

registry::task<registry::result<void>> session_relay::forward(std::string id, std::string text) {
    if (target_.writer_url.empty()) {
        co_return registry::unexpected{registry::error{
            registry::errc::not_writer,
            "this registryd is a standby and the writer (" + target_.writer +
                ") has published no address to relay writes to (store.etcd.advertise_url): send them to the writer"}};
    }
    // A new writer since the last request: the old one's connection ends
    // (with it, on the old writer, this client's session), and what was in
    // flight there is answered.
    if (link_ && link_url_ != target_.writer_url) {
        std::exchange(link_, nullptr)->retire("another registryd writes the registry now (" + target_.writer_url + ")");
    }
    if (!link_) {
        link_url_ = target_.writer_url;
        link_ = std::make_shared<writer_link>(target_.ioc, link_url_, token_, target_.link, deliver_);
    }
    auto link = link_;  // the link outlives this request even if the session closes meanwhile
    co_return co_await link->forward(std::move(id), std::move(text));
}

void session_relay::close() {
    if (auto link = std::exchange(link_, nullptr)) link->close();
}

}  // namespace registryd
