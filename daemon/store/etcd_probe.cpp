#include "store/etcd_probe.hpp"

#include "engine/engine_http.hpp"
#include "observability/log.hpp"
#include "runtime/asio_clock.hpp"

#include <registry/async_scope.hpp>
#include <registry/cancellation.hpp>

#include <ctime>
#include <optional>
#include <stop_token>

namespace registryd {

namespace {

// "2026-12-05T01:02:03.456Z"
std::string iso_utc(std::chrono::system_clock::time_point t) {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[40];
    const std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char frac[8];
    std::snprintf(frac, sizeof frac, ".%03dZ", static_cast<int>(ms % 1000));
    return std::string(buf, n) + frac;
}

}  // namespace

class etcd_probe::impl : public std::enable_shared_from_this<impl> {
public:
    impl(boost::asio::io_context& io, std::vector<engine_http_client> clients, std::vector<std::string> names)
        : clock_(io), clients_(std::move(clients)), names_(std::move(names)) {
        scope_.on_error([](std::exception_ptr) {});  // only operation_cancelled escapes, at stop
    }

    void start() {
        if (!stopped_) scope_.spawn(loop(shared_from_this()));
    }

    void stop() {
        stopped_ = true;
        stop_.request_stop();
    }

    store_health health() const {
        store_health h;
        h.kind = "etcd";
        const std::string contact = last_ok_ ? "last contact " + iso_utc(*last_ok_) : "no contact yet";
        if (!error_.empty()) {
            h.reachable = false;
            h.why = error_;
            h.detail = contact;
        } else {
            h.detail = contact;
        }
        return h;
    }

private:
    static registry::task<void> loop(std::shared_ptr<impl> self) {
        while (!self->stopped_) {
            co_await self->probe();
            const registry::time_point next = self->clock_.now() + interval;
            std::stop_token stop = self->stop_.get_token();
            const bool slept = co_await self->clock_.sleep_until(next, stop);
            if (!slept) break;
        }
    }

    registry::task<void> probe() {
        std::string problem;
        for (std::size_t i = 0; i < clients_.size(); ++i) {
            // Named locals: GCC 12 mishandles temporaries in a co_await expression.
            http_request req{"GET", "/health", {}, {}, false};
            std::stop_token stop = stop_.get_token();
            auto r = co_await clients_[i].request(std::move(req), stop);
            if (r && r->status == 200 && r->body.find("true") != std::string::npos) {
                last_ok_ = std::chrono::system_clock::now();
                if (!error_.empty()) log::info("etcd reachable again", {{"endpoint", names_[i]}});
                error_.clear();
                co_return;
            }
            if (!problem.empty()) problem += "; ";
            problem += names_[i] + ": " + (r ? "GET /health: HTTP " + std::to_string(r->status) + " " + r->body : r.err().message);
            while (!problem.empty() && (problem.back() == '\n' || problem.back() == '\r')) problem.pop_back();
        }
        if (error_.empty()) log::warn("etcd unreachable (/healthz reports 503)", {{"error", problem}});
        error_ = "etcd unreachable: " + problem;
    }

    asio_clock clock_;
    std::vector<engine_http_client> clients_;
    std::vector<std::string> names_;
    std::stop_source stop_;
    bool stopped_ = false;
    std::optional<std::chrono::system_clock::time_point> last_ok_;
    std::string error_;
    registry::async_scope scope_;
};

etcd_probe::etcd_probe(boost::asio::io_context& io, std::vector<engine_http_client> clients,
                       std::vector<std::string> names)
    : impl_(std::make_shared<impl>(io, std::move(clients), std::move(names))) {}

etcd_probe::~etcd_probe() { stop(); }

void etcd_probe::start() { impl_->start(); }
void etcd_probe::stop() { impl_->stop(); }
store_health etcd_probe::health() const { return impl_->health(); }

}  // namespace registryd
