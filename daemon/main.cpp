// registryd: the service registry daemon.
//
// Binds the runtime-agnostic registry library to Boost.Asio: one io_context
// run by the main thread carries all networking and every library coroutine.
// The other threads are the file store's writer (inside file_store_port) and
// the short-lived ones of runtime/blocking_runner (unpacking a package,
// running a deploy script), which hand their results back to the io thread.
// This file is the lifecycle: configuration, startup (the subsystems wired
// from the options of subsystem_options), signals and the bounded graceful
// shutdown. It includes Asio but not Beast (http/).

#include "access/commands.hpp"
#include "access/gate.hpp"
#include "cluster/member_directory.hpp"
#include "cluster/member_engines.hpp"
#include "cluster/member_url.hpp"
#include "cluster/member_targets.hpp"
#include "cluster/member_watch.hpp"
#include "cluster/target_offer.hpp"
#include "cluster/writer_address.hpp"
#include "cluster/writer_link.hpp"
#include "config/command_line.hpp"
#include "config/config.hpp"
#include "deploy/local_target.hpp"
#include "deploy/package_host.hpp"
#include "deploy/ssh_target.hpp"
#include "deploy/upload_dir.hpp"
#include "deploy/manager_containers.hpp"
#include "engine/docker_engine.hpp"
#include "engine/docker_engine_connector.hpp"
#include "observability/audit_log.hpp"
#include "health/asio_prober.hpp"
#include "notify/beast_poster.hpp"
#include "observability/log.hpp"
#include "observability/metrics.hpp"
#include "observability/systemd_notify.hpp"
#include "runtime/asio_clock.hpp"
#include "runtime/blocking_runner.hpp"
#include "runtime/detached_task.hpp"
#include "runtime/oneshot.hpp"
#include "runtime/port_file.hpp"
#include "runtime/os_random.hpp"
#include "runtime/reload_hooks.hpp"
#include "server.hpp"
#include "standby_app.hpp"
#include "store/etcd_store_port.hpp"
#include "store/file_store_port.hpp"
#include "subsystem_options.hpp"

#include <registry/async_scope.hpp>
#include <registry/container_manager.hpp>
#include <registry/deploy/deployer.hpp>
#include <registry/deploy/package_uploads.hpp>
#include <registry/file_store.hpp>
#include <registry/health_monitor.hpp>
#include <registry/notifier.hpp>
#include <registry/protocol/connection.hpp>
#include <registry/protocol/containers.hpp>
#include <registry/protocol/deploy.hpp>
#include <registry/protocol/notifications.hpp>
#include <registry/protocol/repl.hpp>
#include <registry/registered_engines.hpp>
#include <registry/registry.hpp>
#include <registry/repl/executor.hpp>
#include <registry/repl/manager_lease_sink.hpp>
#include <registry/repl/result_store.hpp>
#include <registry/task.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <stop_token>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace {

std::string host_name() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
    return host;
}

// store.etcd.member, or the host name.
std::string member_name(const registryd::config& cfg) {
    if (!cfg.store.etcd.member.empty()) return cfg.store.etcd.member;
    const std::string host = host_name();
    return host.empty() ? std::string("registryd") : host.substr(0, 64);
}

// Names this registryd in the etcd writer key, for the standbys' logs.
std::string writer_holder_name(const registryd::config& cfg) {
    return host_name() + " pid " + std::to_string(::getpid()) + " listen " + cfg.listen.to_string();
}

namespace asio = boost::asio;
namespace log = registryd::log;
using namespace std::chrono_literals;

using registryd::deployer_options_from;
using registryd::engine_options_from;
using registryd::make_container_manager;
using registryd::make_engines;
using registryd::registry_options_from;
using registryd::upload_options_from;
using registryd::oneshot;
using registryd::write_port_file;

constexpr std::string_view version = REGISTRYD_VERSION;  // the CMake project's version

// Raises the soft open-files limit to the hard limit: 10000 connections need
// more than the usual 1024 descriptors.
void raise_fd_limit(const registryd::config& cfg) {
    rlimit rl{};
    if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < rl.rlim_max) {
        rlimit raised = rl;
        raised.rlim_cur = rl.rlim_max;
        if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
    }
    // The server keeps server::descriptor_reserve of them for itself.
    const std::uint64_t needed =
        static_cast<std::uint64_t>(cfg.limits.max_connections) + cfg.limits.max_handshakes + registryd::server::descriptor_reserve;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < needed) {
        log::warn("open-files limit is lower than limits.max_connections and limits.max_handshakes need",
                  {{"nofile", static_cast<std::uint64_t>(rl.rlim_cur)}, {"needed", needed}});
    }
}

// The embedded store in the data directory, recovered; null (logged) if it cannot be opened.
std::unique_ptr<registry::file_store> open_file_store(const registryd::config& cfg) {
    registry::file_store_options store_options;
    store_options.compact_journal_bytes = cfg.store.compact_journal_bytes;
    auto opened = registry::file_store::open(cfg.data_dir, std::move(store_options));
    if (!opened) {
        log::error("cannot open the data directory", {{"data_dir", cfg.data_dir.string()},
                                                      {"code", registry::to_string(opened.err().code)},
                                                      {"error", opened.err().message}});
        return nullptr;
    }
    std::unique_ptr<registry::file_store> store = std::move(opened).value();
    const auto& r = store->stats().recovery;
    log::info("store opened", {{"snapshot_loaded", r.snapshot_loaded},
                               {"snapshot_revision", r.snapshot_revision},
                               {"records_replayed", r.records_replayed},
                               {"records_skipped", r.records_skipped},
                               {"truncated_tail_bytes", r.truncated_tail_bytes},
                               {"removed_temporary_files", r.removed_temporary_files}});
    if (r.truncated_tail_bytes > 0) {
        log::warn("store: a torn or corrupt journal tail was cut off", {{"bytes", r.truncated_tail_bytes}});
    }
    return store;
}

// The daemon's lifecycle, run as one coroutine on the io thread.
class daemon_app {
public:
    // `etcd`: the same store as `port` when it is etcd (the writer publishes
    // where it listens there), else null.
    // `members`: the cluster's other registryd, whose engines the writer
    // runs containers on (store.etcd.share_engines); null on a file store.
    // `listening`: called once it listens, with the address.
    daemon_app(asio::io_context& ioc, const registryd::config& cfg, std::optional<std::filesystem::path> port_file,
               registryd::daemon_store& port, registryd::etcd_store_port* etcd, registryd::access::gate& gate,
               std::shared_ptr<registryd::member_directory> members, std::shared_ptr<asio::ssl::context> member_tls,
               std::function<void(const registryd::listen_address&)> listening)
        : ioc_(ioc),
          cfg_(cfg),
          port_file_(std::move(port_file)),
          port_(port),
          etcd_(etcd),
          members_(std::move(members)),
          listening_(std::move(listening)),
          clock_(ioc),
          reg_(clock_, port_, registry_options_from(cfg)),
          engines_(make_engines(ioc, cfg)),
          containers_(make_container_manager(reg_, clock_, port_, cfg, engines_, metrics_)),
          engine_connector_(ioc, engine_options_from(cfg)),
          server_(ioc, cfg, reg_, metrics_, [this] { return gauges(); }, gate),
          runner_(ioc),
          packages_(runner_, cfg.deploy.package_dirs),
          local_target_(runner_, cfg.deploy.prefix, cfg.deploy.run_as,
                        etcd ? "local." + member_name(cfg) : std::string("local")),
          deployer_(reg_, clock_, port_, packages_, deployer_options_from(cfg, metrics_)),
          upload_dir_(runner_, registryd::deploy_work_dir(cfg) / "uploads"),
          uploads_(clock_, upload_dir_, random_, upload_options_from(cfg)),
          prober_(ioc, cfg.health.ca_file),
          health_(reg_, clock_, prober_, registry::health_monitor_options{cfg.health.max_concurrent_probes}),
          poster_(ioc, cfg.notifications.ca_file),
          notifier_(reg_, port_, random_, poster_, registryd::notifier_options_from(cfg.notifications)),
          signals_(ioc, SIGINT, SIGTERM),
          reload_signal_(ioc, SIGHUP),
          deadline_(ioc),
          shutdown_requested_(ioc),
          drained_(ioc) {
        background_.on_error([this](std::exception_ptr e) { background_failed(e); });
        if (!cfg.audit.file.empty()) {
            audit_.emplace(ioc, cfg.audit.file);
            server_.audit_to(&*audit_);
            reload_hooks_.add("audit log", [this](std::string& why) { return audit_->reopen(why); });
        }
        server_.report_store([this] { return port_.health(); });
        deployer_.add_target(local_target_);
        if (local_target_.name() != "local") deployer_.add_alias("local", local_target_);
        for (auto host : cfg.deploy.remote_hosts) {
            if (host.run_as.empty()) host.run_as = cfg.deploy.run_as;
            remote_targets_.push_back(std::make_unique<registryd::ssh_target>(ioc, std::move(host)));
            deployer_.add_target(*remote_targets_.back());
        }
        if (members_ && cfg.store.etcd.share_deploy_targets) {
            registryd::member_targets_options o;
            o.self = member_name(cfg);
            o.configured.insert(local_target_.name());
            for (const auto& t : remote_targets_) o.configured.insert(t->name());
            o.target.tls = member_tls;
            o.target.work_dir = registryd::deploy_work_dir(cfg);
            member_targets_.emplace(ioc, deployer_, std::move(o));
        }
        if (containers_) {
            registry::protocol::add_container_actions(server_.protocol(), *containers_);
            if (members_ && cfg.store.etcd.share_engines) {
                registryd::member_engines_options o;
                o.self = member_name(cfg);
                for (const auto& e : cfg.containers.engines) o.configured.insert(e.name);
                o.engine = engine_options_from(cfg);
                o.tls = std::move(member_tls);
                // The REPL runs on them too (its slots follow the nodes that join;
                // one that leaves is offline to it).
                member_engines_.emplace(ioc, *containers_, std::move(o),
                                        [this](const std::string& name, registry::container_engine* engine, std::size_t) {
                                            if (!repl_ || !engine) return;
                                            auto added = repl_->add_engine({name, engine, cfg_.repl.max_concurrent});
                                            if (!added) {
                                                log::warn("the REPL cannot use an engine a member offers",
                                                          {{"engine", name}, {"error", added.err().message}});
                                            }
                                        });
            }
            // Container packages (deploy target "containers") on the configured
            // engines and those the cluster's other registryd offer.
            deploy_containers_.emplace(*containers_, [this](std::string_view node) -> registry::container_engine* {
                for (std::size_t i = 0; i < engines_.size(); ++i) {
                    if (cfg_.containers.engines[i].name == node) return engines_[i].get();
                }
                return member_engines_ ? member_engines_->engine(node) : nullptr;
            });
            deployer_.use_containers(*deploy_containers_, &prober_);
        }
        registry::protocol::add_deploy_actions(server_.protocol(), &deployer_, &uploads_);
        registry::protocol::add_notification_actions(server_.protocol(), notifier_);
        start_repl();
        if (cfg.tls) {
            reload_hooks_.add("certificates", [this](std::string& why) { return server_.reload_tls(why); });
        }
        reload_hooks_.add("tokens", [&gate](std::string& why) { return gate.reload(why); });
        if (containers_ && cfg.containers.accept_registered_engines) {
            registered_engines_.emplace(reg_, *containers_, engine_connector_,
                                        [](const std::string& instance_id, const registry::error& why) {
                                            log::warn("registered container engine not used",
                                                      {{"instance_id", instance_id},
                                                       {"code", registry::to_string(why.code)},
                                                       {"error", why.message}});
                                        });
        }
    }

    int exit_code() const noexcept { return exit_code_; }

    // Shuts down as on SIGTERM, then exits with `code`.
    void stop(int code) {
        exit_code_ = code;
        shutdown_requested_.set();
    }

    void start() {
        wait_for_signal();
        wait_for_reload();
        lifecycle_.on_error([this](std::exception_ptr e) {
            log::error("lifecycle failed", {{"error", describe(e)}});
            exit_code_ = 1;
            ioc_.stop();
        });
        lifecycle_.spawn(run());
    }

private:
    // REPL execution (repl.enabled) on the container manager's engines, its
    // containers held under the manager's leases. (Config validation made
    // sure there is an engine, or engines the cluster may offer: so a
    // manager.) Those the other registryd offer join as they come.
    void start_repl() {
        const auto& R = cfg_.repl;
        if (!R.enabled) return;
        std::vector<registry::repl::engine_slot> slots;
        for (std::size_t i = 0; i < engines_.size(); ++i) {
            slots.push_back({cfg_.containers.engines[i].name, engines_[i].get(), R.max_concurrent});
        }
        registry::repl::executor_options o;
        o.max_queue = R.max_queue;
        o.max_concurrent_per_identity = R.max_concurrent_per_identity;
        o.idempotency_window = R.idempotency_window;
        o.lease_grace = R.lease_grace;
        o.warm_max_age = R.warm_max_age;
        o.user = R.user;
        repl_results_.emplace(reg_, port_, R.results);
        o.on_finished = [this](const registry::repl::outcome& r) {
            metrics_.repl_finished(repl_outcome(r), std::chrono::duration<double>(r.duration).count());
            repl_results_->keep(r);
        };
        repl_leases_.emplace(*containers_);
        repl_.emplace(clock_, random_, std::move(slots), R.languages, std::move(o), &*repl_leases_);
        registry::protocol::add_repl_actions(server_.protocol(), *repl_, &*repl_results_);
    }

    // The executor, then the writes of the results of what it stopped.
    registry::task<void> run_repl(std::stop_token stop) {
        co_await repl_->run(stop);
        co_await repl_results_->flush();
    }

    // registryd_repl_executions_total's outcome label (metrics::repl_outcomes).
    static std::string_view repl_outcome(const registry::repl::outcome& r) {
        if (r.failure) return "failed";
        if (r.cancelled) return "cancelled";
        if (r.timed_out) return "timed_out";
        if (r.truncated) return "truncated";
        return r.exit_code == 0 ? "ok" : "error";
    }

    // What /metrics reads from elsewhere, at scrape time.
    registryd::metrics::gauges gauges() const {
        registryd::metrics::gauges g;
        g.services = reg_.size();
        g.revision = reg_.revision();
        g.store_fsyncs = port_.fsyncs();
        g.available = reg_.available();
        g.store_kind = cfg_.store.type == registryd::config::store_section::kind::etcd ? "etcd" : "file";
        switch (reg_.store_status().current) {
            case registry::store_condition::state::ok: g.store_state = "ok"; break;
            case registry::store_condition::state::unreachable: g.store_state = "unreachable"; break;
            case registry::store_condition::state::failed: g.store_state = "failed"; break;
        }
        if (containers_) {
            auto& by_state = g.containers.emplace();
            for (auto s : {registry::managed_state::created, registry::managed_state::running,
                           registry::managed_state::exited, registry::managed_state::removed,
                           registry::managed_state::lost}) {
                by_state.emplace(registry::to_string(s), 0);
            }
            for (const auto& c : containers_->list()) ++by_state[std::string(registry::to_string(c->state))];
            g.containers_queued = containers_->queued().size();
        }
        if (repl_) g.repl = registryd::metrics::gauges::repl_figures{repl_->queued(), repl_->running()};
        for (const auto& w : notifier_.stats()) {
            g.webhooks.push_back({w.name, w.delivered, w.retried, w.dropped, w.outbox, w.dead_letters});
        }
        return g;
    }

    // Info lines for what changes the registry's membership: a new instance
    // (not its keepalives nor re-registrations) and a lease that ran out.
    // Names and ids are clipped; metadata and endpoints are left out.
    registry::task<void> log_registry_changes(std::stop_token stop) {
        registry::watch_options w;
        w.types = {registry::event_type::service_registered, registry::event_type::lease_expired};
        w.snapshot = false;
        w.stop = stop;
        auto events = reg_.watch(std::move(w));
        for (auto it = co_await events.begin(); it != events.end(); co_await ++it) {
            const registry::event& e = **it;
            if (e.type == registry::event_type::service_registered && e.service) {
                log::info("service registered", {{"service", log::clip(e.service->name)},
                                                 {"instance_id", log::clip(e.service->instance_id)},
                                                 {"version", log::clip(e.service->version)},
                                                 {"revision", e.revision}});
            } else if (e.type == registry::event_type::lease_expired) {
                if (e.service) {
                    log::info("lease expired", {{"service", log::clip(e.service->name)},
                                                {"instance_id", log::clip(e.service->instance_id)},
                                                {"revision", e.revision}});
                } else if (const auto c = registry::container_of(e)) {
                    log::info("container lease expired", {{"engine", log::clip(c->engine)},
                                                          {"container_id", log::clip(c->container_id)},
                                                          {"lease_id", c->lease_id},
                                                          {"revision", e.revision}});
                }
            }
        }
    }

    static std::string describe(std::exception_ptr e) {
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            return ex.what();
        } catch (...) {
            return "unknown exception";
        }
    }

    void background_failed(std::exception_ptr e) {
        log::error("background task failed", {{"error", describe(e)}});
        exit_code_ = 1;
        shutdown_requested_.set();
    }

    void wait_for_signal() {
        signals_.async_wait([this](const boost::system::error_code& ec, int signo) {
            if (ec) return;  // cancelled
            ++signals_received_;
            if (signals_received_ == 1) {
                log::info("signal received, shutting down", {{"signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"}});
                shutdown_requested_.set();
            } else {
                log::warn("second signal, closing every connection now",
                          {{"signal", signo == SIGTERM ? "SIGTERM" : "SIGINT"}});
                server_.force_close();
            }
            wait_for_signal();
        });
    }

    // SIGHUP: every registered reload hook, in order (runtime/reload_hooks.hpp).
    void wait_for_reload() {
        reload_signal_.async_wait([this](const boost::system::error_code& ec, int) {
            if (ec) return;  // cancelled
            const auto failed = reload_hooks_.run();
            for (const auto& f : failed) log::error("reload failed, keeping the previous state", {{"what", f.what}, {"error", f.why}});
            log::info("SIGHUP: reloaded", {{"parts", reload_hooks_.size() - failed.size()}, {"failed", failed.size()}});
            wait_for_reload();
        });
    }

    registry::task<void> run() {
        const auto opened = co_await reg_.open();
        if (!opened) {
            log::error("cannot load the registry state",
                       {{"code", registry::to_string(opened.err().code)}, {"error", opened.err().message}});
            exit_code_ = 1;
            co_await finish();
            co_return;
        }
        log::info("registry loaded", {{"services", reg_.size()}, {"revision", reg_.revision()}});
        {
            const auto notifications = co_await notifier_.open();
            if (!notifications) {
                log::error("cannot load the notification outbox",
                           {{"code", registry::to_string(notifications.err().code)},
                            {"error", notifications.err().message}});
                exit_code_ = 1;
                co_await finish();
                co_return;
            }
            std::uint64_t waiting = 0, dead = 0;
            for (const auto& w : notifier_.stats()) {
                waiting += w.outbox;
                dead += w.dead_letters;
            }
            if (!cfg_.notifications.delivery.webhooks.empty() || waiting > 0 || dead > 0) {
                log::info("notifications loaded", {{"webhooks", cfg_.notifications.delivery.webhooks.size()},
                                                   {"outbox", waiting},
                                                   {"dead_letters", dead}});
            }
        }
        // Watching before anything else changes the registry: the leases
        // that ran out while registryd was down, the containers' and
        // deployments' recovery.
        background_.spawn(notifier_.run(stop_.get_token()));
        background_.spawn(log_registry_changes(stop_.get_token()));

        if (containers_) {
            const auto loaded = co_await containers_->open();
            if (!loaded) {
                log::error("cannot load the container leases",
                           {{"code", registry::to_string(loaded.err().code)}, {"error", loaded.err().message}});
                exit_code_ = 1;
                co_await finish();
                co_return;
            }
            log::info("container leases loaded", {{"containers", containers_->list().size()},
                                                  {"engines", engines_.size()}});
        }

        if (repl_results_) {
            const auto loaded = co_await repl_results_->open();
            if (!loaded) {
                log::error("cannot load the repl results",
                           {{"code", registry::to_string(loaded.err().code)}, {"error", loaded.err().message}});
                exit_code_ = 1;
                co_await finish();
                co_return;
            }
        }

        {
            const auto deployments = co_await deployer_.open();
            if (!deployments) {
                log::error("cannot load the deployments",
                           {{"code", registry::to_string(deployments.err().code)}, {"error", deployments.err().message}});
                exit_code_ = 1;
                co_await finish();
                co_return;
            }
            if (*deployments > 0) {
                log::warn("deployments on targets that are no longer configured are not controlled",
                          {{"deployments", *deployments}});
            }
        }

        const std::stop_token stop = stop_.get_token();
        background_.spawn(reg_.run(stop));
        background_.spawn(uploads_.run(stop));
        background_.spawn(health_.run(stop));
        // Each engine is reconciled as its first heartbeat finds it online.
        if (containers_) background_.spawn(containers_->run(stop));
        // Engine services (persisted ones included) become nodes from the registry's snapshot on.
        if (registered_engines_) background_.spawn(registered_engines_->run(stop));
        if (members_ && (member_engines_ || member_targets_)) {
            // What the cluster's other registryd offer, read every second.
            member_watch_.emplace(ioc_, members_);
            if (member_engines_) {
                member_watch_->follow([this](const auto& members, const std::string& secret) {
                    return member_engines_->sync(members, secret);
                });
            }
            if (member_targets_) {
                member_watch_->follow([this](const auto& members, const std::string& secret) {
                    return member_targets_->sync(members, secret);
                });
            }
            background_.spawn(member_watch_->run(stop));
        }
        background_.spawn(watch_availability(stop));
        if (repl_) {
            background_.spawn(repl_results_->run(stop));
            background_.spawn(run_repl(stop));
            log::info("repl execution enabled", {{"engines", engines_.size()},
                                                 {"languages", cfg_.repl.languages.size()},
                                                 {"max_concurrent", cfg_.repl.max_concurrent}});
        }

        if (!shutdown_requested_.is_set()) {
            std::string addr;
            bool started = false;
            try {
                const registryd::listen_address bound = server_.listen();
                addr = bound.to_string();
                if (etcd_) background_.spawn(advertise(bound));
                if (listening_) listening_(bound);
                // Before the port file: whoever sees the file finds the line.
                log::info("listening",
                          {{"addr", addr}, {"data_dir", cfg_.data_dir.string()}, {"version", version}});
                if (port_file_) {
                    write_port_file(*port_file_, addr);
                    port_file_written_ = true;
                }
                started = true;
            } catch (const std::exception& e) {
                log::error("cannot start listening", {{"error", e.what()}});
            }
            if (!started) {
                exit_code_ = 1;
                server_.shutdown([] {});
                co_await finish();
                co_return;
            }
            if (!registryd::notify_systemd("READY=1\nSTATUS=listening on " + addr))
                log::warn("cannot notify systemd (NOTIFY_SOCKET)", {});

            co_await shutdown_requested_.wait();
            registryd::notify_systemd("STOPPING=1");
            reg_.bookmark();  // flushed before the close frames: subscribers resume exactly after a restart
            arm_shutdown_deadline();
            server_.shutdown([this] { drained_.set(); });
            co_await drained_.wait();
            log::info("connections closed");
        }
        co_await finish();
    }

    // Tells the standbys where they relay their clients' writes to.
    registry::task<void> advertise(registryd::listen_address bound) {
        const auto url = registryd::advertised_url(cfg_, bound);
        if (!url) {
            log::warn("standbys cannot relay writes here: listening on a wildcard address without "
                      "store.etcd.advertise_url; they answer writes not_writer",
                      {{"listen", bound.to_string()}});
            co_return;
        }
        try {
            if (co_await etcd_->advertise(registryd::holder_at(writer_holder_name(cfg_), *url))) {
                log::info("writer address published for the standbys", {{"url", *url}});
            }
        } catch (const std::exception& e) {
            log::warn("cannot publish the writer address; standbys answer writes not_writer until it is",
                      {{"error", e.what()}});
        }
    }

    // Everything after the last connection is gone: stop the registry's
    // background work, flush the store, and let io_context::run() return.
    registry::task<void> finish() {
        stop_.request_stop();
        co_await deployer_.shutdown();
        co_await background_.join();
        port_.stop();  // every queued group is durable; later commits would fail
        co_await port_.resign();  // a standby registryd takes over at once
        if (members_) co_await members_->withdraw();
        if (port_file_written_) {  // a stale file must not point the next reader at us
            std::error_code ec;
            std::filesystem::remove(*port_file_, ec);
        }
        boost::system::error_code ignored;
        signals_.cancel(ignored);
        reload_signal_.cancel(ignored);
        deadline_.cancel();
        log::info("stopped", {{"exit_code", exit_code_}, {"revision", reg_.revision()}});
        // Completions the store port posted before stop() returned run first.
        asio::post(ioc_, [this] { ioc_.stop(); });
    }

    // Connections get max(half, all but one second) of timeouts.shutdown to
    // close by themselves; then they are closed forcibly. At the full timeout
    // the process exits 1 whatever is left (a store that does not return).
    void arm_shutdown_deadline() {
        const auto total = std::chrono::duration_cast<std::chrono::milliseconds>(cfg_.timeouts.shutdown);
        const auto graceful = std::max(total / 2, total - 1000ms);
        deadline_.expires_after(graceful);
        deadline_.async_wait([this, rest = total - graceful](const boost::system::error_code& ec) {
            if (ec) return;
            log::warn("shutdown deadline reached, closing remaining connections",
                      {{"connections", server_.connections()}});
            server_.force_close();
            deadline_.expires_after(rest);
            deadline_.async_wait([](const boost::system::error_code& e) {
                if (e) return;
                log::error("shutdown did not complete in time, exiting");
                std::_Exit(1);
            });
        });
    }

    // Logs the store's turns: unreachable (writes refused, kept ones written
    // again once it is back), back, or failed for good.
    registry::task<void> watch_availability(std::stop_token stop) {
        using state = registry::store_condition::state;
        state was = reg_.store_status().current;
        for (;;) {
            // Not `while (co_await ...)`: GCC 12 miscompiles a co_await in an
            // if/while condition when the awaiter really suspends.
            const bool slept = co_await clock_.sleep_until(clock_.now() + registry::milliseconds(500), stop);
            if (!slept) break;
            const auto now = reg_.store_status();
            if (now.current == was) continue;
            if (now.current == state::failed) {
                log::error("store failed: the registry accepts no more writes (requests get 'unavailable'; "
                           "/healthz reports 503); restart registryd",
                           {{"problem", now.problem}});
            } else if (now.current == state::unreachable) {
                log::error("store unreachable: writes get 'unavailable' until it is back; the changes in flight are "
                           "written again then (/healthz reports 503)",
                           {{"problem", now.problem}, {"unwritten", now.unwritten}});
            } else {
                log::info("store back: writes accepted again");
            }
            was = now.current;
        }
    }

    asio::io_context& ioc_;
    const registryd::config& cfg_;
    std::optional<std::filesystem::path> port_file_;
    registryd::daemon_store& port_;
    registryd::etcd_store_port* etcd_;
    std::shared_ptr<registryd::member_directory> members_;
    std::function<void(const registryd::listen_address&)> listening_;
    registryd::asio_clock clock_;
    registryd::metrics metrics_;  // before the subsystems that count into it
    std::optional<registryd::audit_log> audit_;  // audit.file; outlives the server that writes to it
    registry::registry reg_;
    std::vector<std::unique_ptr<registryd::docker_engine>> engines_;
    std::unique_ptr<registry::container_manager> containers_;
    registryd::docker_engine_connector engine_connector_;
    std::optional<registry::registered_engines> registered_engines_;  // containers.accept_registered_engines
    std::optional<registryd::member_engines> member_engines_;  // store.etcd.share_engines
    std::optional<registryd::member_watch> member_watch_;      // follows the members for both
    registryd::server server_;
    registryd::blocking_runner runner_;  // joins its threads before the io_context goes
    registryd::package_host packages_;
    registryd::local_target local_target_;
    std::vector<std::unique_ptr<registryd::ssh_target>> remote_targets_;
    // The targets the cluster's other registryd offer; outlives the deployer
    // that holds them (store.etcd.share_deploy_targets).
    std::optional<registryd::member_targets> member_targets_;
    registry::deploy::deployer deployer_;
    std::optional<registryd::manager_containers> deploy_containers_;  // with containers_
    std::optional<registry::repl::manager_lease_sink> repl_leases_;
    std::optional<registry::repl::result_store> repl_results_;  // outlives repl_, which keeps results in it
    registryd::upload_dir upload_dir_;
    registryd::os_random random_;  // upload and execution ids
    registry::deploy::package_uploads uploads_;
    registryd::asio_prober prober_;
    registry::health_monitor health_;  // runs the registrations' health checks (stopped with background_)
    registryd::beast_poster poster_;   // the webhooks' POSTs
    registry::notifier notifier_;      // webhooks (config `notifications`; stopped with background_)
    std::optional<registry::repl::executor> repl_;  // stopped with background_, before it is destroyed
    asio::signal_set signals_;
    asio::signal_set reload_signal_;
    registryd::reload_hooks reload_hooks_;  // filled in the constructor's body, run on SIGHUP
    asio::steady_timer deadline_;
    oneshot shutdown_requested_;
    oneshot drained_;
    std::stop_source stop_;
    int signals_received_ = 0;
    bool port_file_written_ = false;
    int exit_code_ = 0;
    // Declared last, destroyed first; both are idle once run() has returned.
    registry::async_scope background_;  // registry.run(), watch_availability()
    registry::async_scope lifecycle_;   // run()
};

}  // namespace

int main(int argc, char** argv) {
    // Buffers of 128 KiB and more (large messages and responses) are mapped
    // and go back to the system when freed: a fixed threshold keeps glibc
    // from raising it after the first such free and then keeping the freed
    // buffers in its heap, so RSS follows the memory budget (docs/protocol.md,
    // "Limits") instead of its peak.
    ::mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    if (const auto status = registryd::access::run_command(argc, argv)) return *status;  // token new, roles
    registryd::command_line cli;
    std::optional<registryd::access::gate> gate;
    registryd::config cfg;
    const std::string program = "registryd";
    try {
        cli = registryd::parse_command_line(argc, argv);
        if (cli.help) {
            const std::string text = registryd::usage(program);
            std::fwrite(text.data(), 1, text.size(), stdout);
            return 0;
        }
        if (cli.version) {
            std::printf("registryd %.*s\n", static_cast<int>(version.size()), version.data());
            return 0;
        }
        cfg = registryd::load(cli);
        gate.emplace(cfg);  // the roles and the tokens file
        if (cli.check_config) {
            std::printf("%s: ok\n", cli.config_file->c_str());
            return 0;
        }
    } catch (const registryd::config_error& e) {
        if (cli.check_config) {
            std::fprintf(stderr, "registryd: %s\n", e.what());
            return 2;
        }
        std::fprintf(stderr, "registryd: %s\nTry 'registryd --help'.\n", e.what());
        return 2;
    }

    log::set_level(cfg.log.level);
    log::set_repeat_limit(cfg.log.repeat_burst, cfg.log.repeat_window);
    std::signal(SIGPIPE, SIG_IGN);  // a peer gone mid-write is an error code, not a signal

    // A port file left by an earlier run must not be mistaken for ours.
    if (cli.port_file) {
        std::error_code ec;
        std::filesystem::remove(*cli.port_file, ec);
    }

    log::info("starting", {{"version", version},
                           {"pid", static_cast<std::int64_t>(::getpid())},
                           {"listen", cfg.listen.to_string()},
                           {"data_dir", cfg.data_dir.string()}});
    if (!registryd::is_loopback_host(cfg.listen.host)) {
        if (!gate->enabled()) {
            log::warn("listening beyond loopback without authentication (auth.disabled): anyone who reaches the port may do anything",
                      {{"listen", cfg.listen.to_string()}});
        } else if (!registryd::transport_encrypted(cfg)) {
            log::warn("listening beyond loopback without TLS: tokens cross the network in the clear",
                      {{"listen", cfg.listen.to_string()}});
        }
    }
    raise_fd_limit(cfg);
    log::info("memory budget", {{"memory_budget_bytes", cfg.limits.memory_budget_bytes}});

    int code = 0;
    bool start_failed = false;  // set on the io thread, read after run()
    try {
        asio::io_context ioc{1};  // one thread runs it
        std::unique_ptr<registry::file_store> files;  // kind: file
        std::unique_ptr<registryd::daemon_store> port;
        registryd::etcd_store_port* etcd = nullptr;
        std::shared_ptr<asio::ssl::context> relay_tls;  // a standby's, for a wss:// writer (and the writer's, for a member)
        std::shared_ptr<registryd::member_directory> members;  // kind: etcd
        if (cfg.store.type == registryd::config::store_section::kind::etcd) {
            relay_tls = registryd::make_writer_tls_context(cfg.store.etcd.relay_ca_file);
            const auto& e = cfg.store.etcd;
            const registryd::etcd_options options{e.endpoints, e.prefix, e.dial_timeout, e.request_timeout,
                                                  {e.tls.ca_file, e.tls.cert_file, e.tls.key_file, e.tls.server_name},
                                                  e.writer_lease_ttl};
            auto p = std::make_unique<registryd::etcd_store_port>(ioc, options);
            etcd = p.get();
            port = std::move(p);
            members = registryd::member_directory::open(ioc, options, member_name(cfg));
            std::string endpoints;
            for (const auto& url : e.endpoints) endpoints += (endpoints.empty() ? "" : ",") + url;
            log::info("store: etcd", {{"endpoints", endpoints}, {"prefix", e.prefix}});
        } else {
            files = open_file_store(cfg);
            if (!files) return 1;
            port = std::make_unique<registryd::file_store_port>(ioc, *files);
        }
        // Once it listens, this registryd is a member of the cluster, with the
        // engines it offers (the writer uses the others'), and as a standby
        // the deploy targets it serves the writer.
        const auto member_record_of = [&](const registryd::listen_address& bound) {
            registryd::member_record r;
            r.name = member_name(cfg);
            r.url = registryd::advertised_url(cfg, bound).value_or(std::string());
            if (cfg.store.etcd.share_engines) {
                for (const auto& e : cfg.containers.engines) r.engines.push_back({e.name, e.capacity});
            }
            r.host = host_name();
            r.pid = static_cast<std::uint64_t>(::getpid());
            return r;
        };
        const auto publish_member = [&](const registryd::listen_address& bound) {
            if (members) members->publish(member_record_of(bound));
        };
        const auto publish_standby = [&](const registryd::listen_address& bound) {
            if (!members) return;
            registryd::member_record r = member_record_of(bound);
            if (cfg.store.etcd.share_deploy_targets && !r.url.empty()) {
                auto at = registryd::member_endpoint_of(r.url);
                if (at) r.targets = registryd::offered_targets(cfg, r.name, at->where.host);
            }
            members->publish(std::move(r));
        };
        std::optional<daemon_app> app;
        const auto serve = [&] {
            app.emplace(ioc, cfg, cli.port_file, *port, etcd, *gate, members, relay_tls, publish_member);
            app->start();
        };
        // Several registryd may share an etcd and prefix: one serves once it is
        // the registry's writer (store/etcd_store_port.hpp); until then it is a
        // standby that serves reads and subscriptions (standby_app.hpp), and it
        // is stopped by a signal like a serving one.
        // What a standby stops last: the store (its watch, campaign and probe),
        // and its membership (the writer stops using its engines at once).
        const auto stop_store = [&] {
            port->stop();
            if (members) registryd::run_detached(members, members->withdraw());
        };
        std::optional<registryd::standby_app> standby;
        std::string writer;          // the writer the standby names
        bool elected = false;        // serve() once the standby has closed its connections
        bool stopping = false;       // a signal, or etcd unreachable at start
        asio::steady_timer standby_again(ioc);  // a standby that could not follow starts anew after a pause
        std::function<void()> stand_by = [&] {
            standby.emplace(ioc, cfg, cli.port_file, *etcd, *gate, writer, *relay_tls, members, publish_standby);
            standby->start([&](bool again) {
                if (const auto& where = standby->address()) cfg.listen = *where;
                standby.reset();
                if (elected) {
                    serve();
                } else if (stopping) {
                    stop_store();
                } else if (again) {
                    standby_again.expires_after(1s);
                    standby_again.async_wait([&](const boost::system::error_code& ec) {
                        if (!ec && !elected && !stopping && !standby) stand_by();
                    });
                }
            });
        };
        asio::signal_set standby_signals(ioc);
        if (!etcd) {
            asio::post(ioc, serve);
        } else {
            standby_signals.add(SIGINT);
            standby_signals.add(SIGTERM);
            // A standby stops by closing its connections and stopping the store
            // (its watch, campaign and probe): run() returns once what they have
            // in flight is done.
            standby_signals.async_wait([&](const boost::system::error_code& ec, int) {
                if (ec) return;
                log::info("stopping while standing by");
                stopping = true;
                standby_again.cancel();
                if (standby) {
                    standby->stop();
                } else {
                    stop_store();
                }
            });
            etcd->campaign(
                writer_holder_name(cfg),
                [&] {
                    elected = true;
                    standby_again.cancel();
                    boost::system::error_code ignored;
                    standby_signals.cancel(ignored);
                    standby_signals.clear(ignored);  // the serving daemon's own set takes them
                    if (standby) {
                        standby->stop();  // serve() once its connections are closed
                    } else {
                        // Posted, as every start from the election's callbacks: what a
                        // start throws ends run() (a fatal error, exit 1) instead of
                        // the election's coroutine.
                        asio::post(ioc, serve);
                    }
                },
                [&](const std::string& why, bool was_writer) {
                    if (was_writer) {
                        // Whatever this process still holds in memory may be stale: it
                        // shuts down and exits 75 (EX_TEMPFAIL) to come back as a
                        // standby; its clients reconnect to the new writer.
                        log::error("deposed: another registryd writes the registry now; exiting", {{"why", why}});
                        asio::post(ioc, [&] { app->stop(75); });  // not from inside the store's own coroutines
                        return;
                    }
                    log::error("store: etcd unreachable at start", {{"error", why}});
                    start_failed = true;
                    stopping = true;
                    boost::system::error_code ignored;
                    standby_signals.cancel(ignored);
                    asio::post(ioc, [&] {  // not from inside the store's own coroutines
                        if (standby) {
                            standby->stop();
                        } else {
                            stop_store();
                        }
                    });
                },
                [&](const std::string& holder) {
                    writer = holder;
                    if (standby) {
                        standby->writer_changed(holder);
                    } else if (!elected && !stopping) {
                        asio::post(ioc, [&] {
                            if (!standby && !elected && !stopping) stand_by();
                        });
                    }
                });
        }
        ioc.run();
        code = start_failed ? 1 : app ? app->exit_code() : 0;
    } catch (const std::exception& e) {
        log::error("fatal error", {{"error", e.what()}});
        return 1;
    }
    return code;
}
