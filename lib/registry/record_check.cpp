// Checks' results: record_check (docs/protocol.md, "Health checks"), and
// what a registration carries over of them.
#include "check_results.hpp"
#include "registry_impl.hpp"

#include "codec/utf8.hpp"

namespace registry {

namespace detail {

namespace {

// At most max_check_output bytes, not ending inside a UTF-8 sequence.
std::string cut_output(std::string_view out) {
    if (out.size() > max_check_output) {
        std::size_t n = max_check_output;
        while (n > 0 && (static_cast<unsigned char>(out[n]) & 0xC0) == 0x80) --n;
        out = out.substr(0, n);
    }
    return valid_utf8(out);
}

constexpr std::string_view health_reason_prefix = "health check ";

}  // namespace

void carry_check_results(service_instance& next, const service_instance* previous, time_point now) {
    for (auto& c : next.checks) {
        c.result = check_result{health_status::unknown, {}, now, now};
        if (!previous) continue;
        for (const auto& p : previous->checks) {
            if (p.name == c.name && p.same_definition(c)) c.result = p.result;
        }
    }
    if (!next.checks.empty()) {
        next.health = aggregate_health(next, now);
    } else if (previous && !previous->checks.empty()) {
        next.health.reset();  // it was the checks' health
    }
}

health_result aggregate_health(const service_instance& s, time_point now) {
    const health_check* worst = nullptr;
    for (const auto& c : s.checks) {
        if (!worst || severity(c.result.status) > severity(worst->result.status)) worst = &c;
    }
    if (!worst) return health_result{health_status::unknown, {}, now};
    return health_result{worst->result.status, worst->name + ": " + worst->result.output, now};
}

}  // namespace detail

task<result<service_ptr>> registry::record_check(std::string_view instance_id, check_report r) {
    auto& m = *impl_;
    if (auto refused = m.refuse_writes()) co_return unexpected{std::move(*refused)};
    auto it = m.services.find(instance_id);
    if (it == m.services.end()) co_return fail(errc::not_found, "no instance '" + std::string(instance_id) + "'");
    const service_ptr current = it->second;
    const bool report = r.lease_id.has_value();
    if (report && *r.lease_id != current->lease.id) {
        co_return fail(errc::lease_not_found, "instance '" + current->instance_id + "' is not held by lease " +
                                                  std::to_string(*r.lease_id));
    }
    const time_point now = m.clk.now();
    std::string output = detail::cut_output(r.output);
    auto next = std::make_shared<service_instance>(*current);

    // An instance without checks takes a report as its health.
    if (report && current->checks.empty()) {
        if (!r.check.empty()) co_return fail(errc::not_found, "instance '" + current->instance_id + "' has no checks");
        const bool changed = !current->health || current->health->status != r.status;
        next->health = health_result{r.status, std::move(output), now};
        if (!changed) {
            store_batch batch{m.revisions.state_revision, {}};
            batch.mutations.push_back({detail::service_key(next->instance_id), detail::encode_service_record(*next)});
            m.services.insert_or_assign(next->instance_id, next);
            const bool written = co_await m.commit(std::move(batch));
            if (!written) co_return m.not_written("health report");
            co_return service_ptr(std::move(next));
        }
        auto e = detail::make_event(event_type::health_check_result, 0, next);
        co_return co_await m.replace(std::move(next), std::move(e), "health report");
    }

    health_check* check = nullptr;
    for (auto& c : next->checks) {
        const bool wanted = r.check.empty() ? c.kind == check_kind::ttl : c.name == r.check;
        if (!wanted) continue;
        if (check) co_return fail(errc::invalid_request, "instance '" + current->instance_id +
                                                             "' has several ttl checks: name one (check)");
        check = &c;
    }
    if (!check) {
        co_return fail(errc::not_found, r.check.empty() ? "instance '" + current->instance_id + "' has no ttl check"
                                                        : "instance '" + current->instance_id + "' has no check '" +
                                                              r.check + "'");
    }
    if (report && check->kind != check_kind::ttl) {
        co_return fail(errc::invalid_request, "check '" + check->name + "' is of kind " +
                                                  std::string(to_string(check->kind)) + ": only ttl checks take reports");
    }

    const health_status previous = check->result.status;
    if (previous == r.status) {
        if (!report) co_return current;  // no transition, nothing to keep
        // A ttl check's report: its time and output are what the check waits for.
        check->result.output = std::move(output);
        check->result.checked_at = now;
        m.services.insert_or_assign(next->instance_id, next);
        store_batch batch{m.revisions.state_revision, {}};
        batch.mutations.push_back({detail::service_key(next->instance_id), detail::encode_service_record(*next)});
        const bool written = co_await m.commit(std::move(batch));
        if (!written) co_return m.not_written("health report");
        co_return service_ptr(std::move(next));
    }

    check->result = check_result{r.status, output, now, now};
    auto change = std::make_shared<check_change>();
    change->name = check->name;
    change->kind = check->kind;
    change->status = r.status;
    change->previous = previous;
    change->output = std::move(output);
    change->count = r.count;
    next->health = detail::aggregate_health(*next, now);

    std::vector<std::shared_ptr<event>> events;
    auto e = detail::make_event(event_type::health_check_result, 0, next);
    e->check = std::move(change);
    events.push_back(std::move(e));
    // The instance's state follows its health: running turns failed while
    // it is critical, and a failure of the checks' making ends with it.
    const bool critical = next->health->status == health_status::critical;
    std::shared_ptr<service_instance> starting;  // the instance as the failed -> starting event shows it
    auto state_change = [&](service_state from, std::string reason, service_ptr as) {  // to: as->state
        auto s = detail::make_event(event_type::service_state_changed, 0, std::move(as), std::move(reason));
        s->previous_state = from;
        events.push_back(std::move(s));
    };
    if (critical && next->state == service_state::running) {
        next->state = service_state::failed;
        next->failure_reason = std::string(detail::health_reason_prefix) + "'" + check->name + "' critical: " +
                               check->result.output;
        state_change(service_state::running, next->failure_reason, next);
    } else if (!critical && next->state == service_state::failed &&
               next->failure_reason.starts_with(detail::health_reason_prefix)) {
        // Through starting, as the state machine has it (failed -> starting -> running).
        next->state = service_state::running;
        next->failure_reason.clear();
        starting = std::make_shared<service_instance>(*next);
        starting->state = service_state::starting;
        state_change(service_state::failed, "health checks no longer critical", starting);
        state_change(service_state::starting, "health checks no longer critical", next);
    }

    const std::uint64_t rev = m.revisions.next_revision(std::move(events));
    next->modified_revision = rev;
    if (starting) starting->modified_revision = rev;
    m.services.insert_or_assign(next->instance_id, next);
    store_batch batch{rev, {}};
    batch.mutations.push_back({detail::service_key(next->instance_id), detail::encode_service_record(*next)});
    const bool written = co_await m.commit(std::move(batch), rev, rev);
    if (!written) co_return m.not_written("check result");
    co_return service_ptr(std::move(next));
}

}  // namespace registry
