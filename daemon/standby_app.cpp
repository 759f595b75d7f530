#include "standby_app.hpp"

#include "cluster/member_directory.hpp"
#include "cluster/target_offer.hpp"
#include "cluster/writer_address.hpp"
#include "observability/log.hpp"
#include "observability/systemd_notify.hpp"
#include "runtime/port_file.hpp"
#include "store/etcd_store_port.hpp"
#include "subsystem_options.hpp"

#include <registry/protocol/connection.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <exception>
#include <stdexcept>
#include <utility>

namespace registryd {

namespace {

writer_link_options relay_link_options(const config& cfg, boost::asio::ssl::context& tls) {
    writer_link_options o;
    o.open_timeout = cfg.store.etcd.request_timeout;
    o.silence_timeout = 2 * cfg.timeouts.idle;  // the writer pings an idle connection after half of timeouts.idle
    o.tls = &tls;
    return o;
}

}  // namespace

standby_app::standby_app(boost::asio::io_context& ioc, const config& cfg,
                         std::optional<std::filesystem::path> port_file, etcd_store_port& port, access::gate& gate,
                         std::string writer, boost::asio::ssl::context& relay_tls,
                         std::shared_ptr<member_directory> members,
                         std::function<void(const listen_address&)> listening)
    : ioc_(ioc),
      cfg_(cfg),
      port_file_(std::move(port_file)),
      port_(port),
      relay_{ioc, std::move(writer), {}, relay_link_options(cfg, relay_tls)},
      members_(std::move(members)),
      listening_(std::move(listening)),
      clock_(ioc),
      reg_(clock_, port_, registry_options_from(cfg)),
      server_(ioc, cfg, reg_, metrics_, [this] { return gauges(); }, gate),
      stop_requested_(ioc),
      drained_(ioc) {
    server_.report_store([this] {
        store_health h = port_.health();
        if (relaying_) {
            h.detail += relay_.writer_url.empty() ? ", writes answered not_writer (the writer published no address yet)"
                                                  : ", relaying writes to " + relay_.writer_url;
        }
        return h;
    });
    server_.protocol().serve_replica();
    relay_.writer_url = url_of_holder(relay_.writer).value_or(std::string());
    // A writer that asks every client for a certificate (tls.client_ca_file)
    // cannot be relayed to: the relay has none of its client's to present.
    const bool mutual_tls = cfg.tls && !cfg.tls->client_ca_file.empty();
    relaying_ = cfg.store.etcd.relay_writes && !mutual_tls;
    if (relaying_) server_.relay_writes(relay_);
}

void standby_app::start(std::function<void(bool)> ended) {
    ended_ = std::move(ended);
    lifecycle_.on_error([this](std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            log::error("standby failed", {{"error", ex.what()}});
        } catch (...) {
            log::error("standby failed", {{"error", "unknown exception"}});
        }
        again_ = true;
        boost::asio::post(ioc_, [ended = ended_] { ended(true); });
    });
    lifecycle_.spawn(run());
}

void standby_app::stop() { stop_requested_.set(); }

void standby_app::writer_changed(std::string writer) {
    relay_.writer = std::move(writer);
    relay_.writer_url = url_of_holder(relay_.writer).value_or(std::string());
    if (reg_.is_replica()) reg_.become_replica(relay_.writer);
}

registry::task<void> standby_app::run() {
    port_.pin_loads();  // the records and the event log of one etcd revision, which the watch starts after
    const auto opened = co_await reg_.open();
    const std::uint64_t snapshot = port_.unpin_loads();
    if (!opened) {
        log::error("standby: cannot load the registry",
                   {{"code", registry::to_string(opened.err().code)}, {"error", opened.err().message}});
        again_ = true;
    }
    if (opened && !stop_requested_.is_set()) {
        reg_.become_replica(relay_.writer);
        reg_.set_read_barrier([this] { return port_.read_barrier(); });
        const auto cannot_follow = [this](const std::string& why) {
            if (again_) return;
            log::error("standby: cannot follow the writer; loading the registry again", {{"error", why}});
            again_ = true;
            stop_requested_.set();
        };
        port_.follow(
            snapshot,
            [this](etcd_txn_seen txn) {
                // Thrown: the port stops following and says why (`cannot_follow`).
                if (auto applied = reg_.apply(txn.mutations); !applied) throw std::runtime_error(applied.err().message);
            },
            cannot_follow);
        background_.spawn(reg_.run(stop_.get_token()));
        co_await offer_to_writer();
        std::string addr;
        try {
            address_ = server_.listen();
            addr = address_->to_string();
            if (listening_) listening_(*address_);
            // Before the port file: whoever sees the file finds the line.
            log::info("standby: serving reads and subscriptions; writes go to the writer",
                      {{"addr", addr}, {"writer", relay_.writer}, {"revision", reg_.revision()}});
            if (port_file_) {
                write_port_file(*port_file_, addr);
                port_file_written_ = true;
            }
            notify_systemd("READY=1\nSTATUS=standby, serving reads on " + addr);
        } catch (const std::exception& e) {
            log::error("standby: cannot start listening; standing by without serving", {{"error", e.what()}});
        }
        co_await stop_requested_.wait();
        port_.stop_following();
        server_.shutdown([this] { drained_.set(); });
        // Its clients reconnect to whoever serves next: no long goodbye.
        boost::asio::steady_timer deadline(ioc_);
        deadline.expires_after(std::chrono::seconds(1));
        deadline.async_wait([this](const boost::system::error_code& ec) {
            if (!ec) server_.force_close();
        });
        co_await drained_.wait();
        deadline.cancel();
        stop_.request_stop();
        co_await background_.join();
    }
    if (port_file_written_) {
        std::error_code ec;
        std::filesystem::remove(*port_file_, ec);
    }
    boost::asio::post(ioc_, [ended = ended_, again = again_] { ended(again); });
}

registry::task<void> standby_app::offer_to_writer() {
    const bool engines = cfg_.store.etcd.share_engines && !cfg_.containers.engines.empty();
    const bool targets = cfg_.store.etcd.share_deploy_targets;
    if (!members_ || (!engines && !targets)) co_return;
    auto secret = co_await members_->cluster_secret();
    if (!secret) {
        log::error("standby: cannot read the cluster's secret; the writer cannot use this registryd's engines and "
                   "deploy targets",
                   {{"error", secret.err().message}});
        co_return;
    }
    if (engines) {
        offer_.secret = *secret;
        for (const auto& e : cfg_.containers.engines) {
            auto where = engine_endpoint::parse(e.endpoint);
            if (where) offer_.engines.insert_or_assign(e.name, std::move(*where));  // the configuration checked it
        }
        server_.offer_engines(offer_);
    }
    if (targets) server_.offer_targets(std::make_shared<target_offer>(ioc_, cfg_, members_->name(), std::move(*secret)));
}

metrics::gauges standby_app::gauges() const {
    metrics::gauges g;
    g.services = reg_.size();
    g.revision = reg_.revision();
    g.store_kind = "etcd";
    g.role = "standby";
    g.available = true;
    return g;
}

}  // namespace registryd
