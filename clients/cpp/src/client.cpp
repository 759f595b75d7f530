#include "client_impl.hpp"

namespace registry::client {

namespace detail {

error error_from(std::exception_ptr e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return error{make_error_code(errc::internal), std::string("registry::client: ") + x.what()};
    } catch (...) {
        return error{make_error_code(errc::internal), "registry::client: an unknown exception"};
    }
}

asio::any_io_executor executor_of(const registration_state& s) { return s.ex; }
asio::any_io_executor executor_of(const subscription_state& s) { return s.ex; }

asio::awaitable<result<done>> deregister(std::shared_ptr<registration_state> s) {
    auto impl = s->client.lock();
    if (!impl) co_return error{make_error_code(errc::closed), "the client was closed"};
    co_return co_await impl->deregister(std::move(s));
}

asio::awaitable<result<event>> next_event(std::shared_ptr<subscription_state> s) {
    for (;;) {
        if (!s->queue.empty()) {
            event e = std::move(s->queue.front());
            s->queue.pop_front();
            co_return e;
        }
        if (s->end) co_return *s->end;
        co_await s->ready.wait_until(clock::time_point::max());
    }
}

}  // namespace detail

const std::string& registration::instance_id() const { return s_->lease.instance_id; }
std::uint64_t registration::lease_id() const { return s_->lease.lease_id; }
std::int64_t registration::expires_at_ms() const { return s_->lease.expires_at_ms; }
std::uint64_t registration::renewals() const { return s_->renewals; }
std::uint64_t registration::reregistrations() const { return s_->reregistrations; }

void registration::stop() {
    if (auto impl = s_->client.lock()) impl->stop(s_);
    s_->stopped = true;
    s_->timer.cancel();
}

std::uint64_t subscription::last_revision() const { return s_->resume.last(); }

void subscription::cancel() {
    if (auto impl = s_->client.lock()) impl->cancel(s_);
}

client::client(executor_type ex, options opts) : impl_(std::make_shared<detail::client_impl>(ex, std::move(opts))) {
    impl_->start();
}

client::~client() { impl_->close(); }

client::executor_type client::get_executor() const { return impl_->executor(); }
bool client::is_connected() const { return impl_->connected(); }
const std::string& client::url() const { return impl_->current_url(); }
void client::close() { impl_->close(); }

asio::awaitable<result<done>> client::connect_op() {
    auto impl = impl_;
    co_return co_await impl->wait_connected();
}

asio::awaitable<result<registration>> client::register_op(service_instance service, register_options opts) {
    auto impl = impl_;
    co_return co_await impl->register_service(std::move(service), opts);
}

asio::awaitable<result<done>> client::deregister_op(std::string instance_id) {
    auto impl = impl_;
    auto data = co_await impl->request("deregister", wire::instance_params(instance_id));
    if (!data) co_return data.err();
    co_return done{};
}

asio::awaitable<result<service_instance>> client::get_service_op(std::string instance_id) {
    auto impl = impl_;
    auto data = co_await impl->request("get_service", wire::instance_params(instance_id));
    if (!data) co_return data.err();
    co_return wire::service_of(impl->parser(), *data);
}

asio::awaitable<result<listing<service_instance>>> client::find_service_op(std::string name,
                                                                           std::optional<health_filter> health) {
    auto impl = impl_;
    listing<service_instance> out;
    std::string params = wire::name_params(name, health);
    for (;;) {
        auto data = co_await impl->request("get_service", params);
        if (!data) co_return data.err();
        auto next = wire::services_page(impl->parser(), *data, out);
        if (!next) co_return next.err();
        if (next->empty()) co_return out;
        params = wire::continue_params(*next);
    }
}

asio::awaitable<result<listing<endpoint_info>>> client::list_endpoints_op(endpoint_filter filter) {
    auto impl = impl_;
    listing<endpoint_info> out;
    std::string params = wire::endpoints_params(filter);
    for (;;) {
        auto data = co_await impl->request("list_endpoints", params);
        if (!data) co_return data.err();
        auto next = wire::endpoints_page(impl->parser(), *data, out);
        if (!next) co_return next.err();
        if (next->empty()) co_return out;
        params = wire::continue_params(*next);
    }
}

asio::awaitable<result<subscription>> client::watch_op(watch_options opts) {
    auto impl = impl_;
    co_return co_await impl->watch(std::move(opts));
}

}  // namespace registry::client
