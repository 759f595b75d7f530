#include "history_checker.hpp"

#include <algorithm>
#include <ctime>
#include <set>
#include <sstream>

namespace it {

namespace {

// expires_at_ms is the server's deadline cut to milliseconds: an event at
// the deadline may carry a time up to a millisecond before it.
constexpr ms early_tolerance{2};
// A write in flight when the store went away is refused only after the
// store's request timeout: a lease due that long before the first refusal
// a client saw may have been held up by the same outage.
constexpr ms outage_lead{2500};

wall::time_point from_ms(std::int64_t v) { return wall::time_point(std::chrono::milliseconds(v)); }

std::int64_t ms_between(wall::time_point a, wall::time_point b) {
    return std::chrono::duration_cast<ms>(b - a).count();
}

// The instance an event is about ("" for markers).
std::string instance_of(const json::value& frame) {
    if (has(frame, "/data/instance_id")) return str(frame, "/data/instance_id");
    if (has(frame, "/data/service/instance_id")) return str(frame, "/data/service/instance_id");
    return {};
}

}  // namespace

std::string format_time(wall::time_point t) {
    const auto msec = std::chrono::duration_cast<ms>(t.time_since_epoch()).count();
    const std::time_t secs = static_cast<std::time_t>(msec / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(msec % 1000));
    return buf;
}

// ------------------------------------------------------------------ recording

void history_checker::registered(const std::string& client, const json::value& data, bool renewed) {
    lease_record l;
    l.client = client;
    l.instance = str(data, "/instance_id");
    l.lease_id = num(data, "/lease_id");
    l.revision = static_cast<std::uint64_t>(num(data, "/revision"));
    l.ttl_seconds = static_cast<int>(num(data, "/ttl_seconds"));
    l.registered_at = wall::now();
    l.deadline = from_ms(num(data, "/expires_at_ms"));
    l.renewed_by_client = renewed;
    std::lock_guard lock(mutex_);
    writes_.emplace_back(l.registered_at, true);
    leases_[l.instance] = std::move(l);
}

void history_checker::renewed(const std::string& instance, const json::value& data) {
    const auto deadline = from_ms(num(data, "/expires_at_ms"));
    std::lock_guard lock(mutex_);
    writes_.emplace_back(wall::now(), true);
    ++renewals_;
    auto it = leases_.find(instance);
    if (it == leases_.end()) return;
    it->second.renewals = true;
    it->second.deadline = std::max(it->second.deadline, deadline);
}

void history_checker::deregistered(const std::string& instance, const json::value& data) {
    const auto revision = static_cast<std::uint64_t>(num(data, "/revision"));
    std::lock_guard lock(mutex_);
    writes_.emplace_back(wall::now(), true);
    auto it = leases_.find(instance);
    if (it != leases_.end()) it->second.deregistered_revision = revision;
}

void history_checker::uncertain(const std::string& instance, const std::string& why) {
    std::lock_guard lock(mutex_);
    auto it = leases_.find(instance);
    if (it != leases_.end() && !it->second.uncertain) it->second.uncertain = why;
}

void history_checker::lease_lost(const std::string& instance, wall::time_point at) {
    std::lock_guard lock(mutex_);
    auto it = leases_.find(instance);
    if (it != leases_.end() && !it->second.lost_at) it->second.lost_at = at;
}

void history_checker::write_refused(wall::time_point at, const std::string& code) {
    std::lock_guard lock(mutex_);
    ++refusals_[code];
    if (code == "unavailable") writes_.emplace_back(at, false);
}

void history_checker::write_acknowledged(wall::time_point at) {
    std::lock_guard lock(mutex_);
    writes_.emplace_back(at, true);
}

void history_checker::fault(const std::string& what, wall::time_point from, wall::time_point to, bool ttl_again) {
    std::lock_guard lock(mutex_);
    faults_.push_back({what, from, to, ttl_again});
}

std::size_t history_checker::add_subscriber(const std::string& name) {
    std::lock_guard lock(mutex_);
    subscribers_.push_back({name, {}, 0, std::nullopt});
    return subscribers_.size() - 1;
}

void history_checker::subscribed(std::size_t sub, const std::string& registryd,
                                 std::optional<std::uint64_t> from_revision, std::uint64_t response_revision) {
    std::lock_guard lock(mutex_);
    subscriber& s = subscribers_.at(sub);
    stream_entry e;
    e.what = stream_entry::kind::subscribed;
    e.revision = response_revision;
    e.from_revision = from_revision;
    e.at = wall::now();
    e.note = registryd;
    s.replay_up_to = from_revision ? response_revision : 0;
    s.entries.push_back(std::move(e));
}

void history_checker::event(std::size_t sub, const json::value& frame, wall::time_point at) {
    stream_entry e;
    e.type = str(frame, "/event");
    e.revision = static_cast<std::uint64_t>(num(frame, "/revision"));
    e.instance = instance_of(frame);
    e.at = at;
    if (e.type == "resync_required") {
        e.note = "from_revision " + std::to_string(num(frame, "/data/from_revision")) + ", oldest_revision " +
                 std::to_string(num(frame, "/data/oldest_revision"));
    }
    if (e.type == "registry_loaded") {
        for (const json::value& svc : arr(frame, "/data/services")) e.services.push_back(str(svc, "/instance_id"));
    }
    std::lock_guard lock(mutex_);
    subscriber& s = subscribers_.at(sub);
    e.replay = e.type != "registry_loaded" && e.revision <= s.replay_up_to;
    if (e.type != "bookmark" && e.type != "resync_required") s.last = std::max(s.last.value_or(0), e.revision);
    s.entries.push_back(std::move(e));
}

void history_checker::disconnected(std::size_t sub, const std::string& why) {
    std::lock_guard lock(mutex_);
    stream_entry e;
    e.what = stream_entry::kind::disconnected;
    e.at = wall::now();
    e.note = why;
    subscribers_.at(sub).entries.push_back(std::move(e));
}

std::optional<std::uint64_t> history_checker::last_revision(std::size_t sub) const {
    std::lock_guard lock(mutex_);
    return subscribers_.at(sub).last;
}

// --------------------------------------------------------------------- checks

std::vector<std::string> history_checker::check_streams() const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> problems;
    // What each revision was, as each subscriber saw it within a line.
    struct seen {
        std::string type, instance;
        std::size_t sub;
    };
    std::map<std::uint64_t, std::vector<seen>> by_revision;
    // The revisions each subscriber saw all of: (line start, line end].
    std::vector<std::vector<std::pair<std::uint64_t, std::uint64_t>>> covered(subscribers_.size());

    for (std::size_t si = 0; si < subscribers_.size(); ++si) {
        const subscriber& s = subscribers_[si];
        const std::string who = "subscriber " + s.name;
        bool line = false, expect_snapshot = false;
        std::uint64_t start = 0, last = 0;
        std::string last_type, last_instance;
        auto close_line = [&] {
            if (line) covered[si].emplace_back(start, last);
            line = false;
        };
        for (const stream_entry& e : s.entries) {
            if (e.what == stream_entry::kind::disconnected) continue;
            if (e.what == stream_entry::kind::subscribed) {
                if (!e.from_revision) {
                    close_line();
                    expect_snapshot = true;
                } else if (!line && !expect_snapshot) {
                    problems.push_back(who + " resumed from revision " + std::to_string(*e.from_revision) + " on " +
                                       e.note + " without having a line of events");
                } else if (line && *e.from_revision != last) {
                    problems.push_back(who + " resumed from revision " + std::to_string(*e.from_revision) + " on " +
                                       e.note + " but the last revision it saw was " + std::to_string(last));
                }
                if (e.from_revision && e.revision < *e.from_revision) {
                    problems.push_back(who + ": " + e.note + " answered a resume from revision " +
                                       std::to_string(*e.from_revision) + " with the registry at revision " +
                                       std::to_string(e.revision) + " (the revision line went backwards; a resync should follow)");
                }
                continue;
            }
            const std::string at = " at revision " + std::to_string(e.revision);
            if (e.type == "resync_required") {
                close_line();
                expect_snapshot = true;
                continue;
            }
            if (e.type == "registry_loaded") {
                if (!expect_snapshot) {
                    problems.push_back(who + ": registry_loaded" + at + " without a subscribe or resync_required before it");
                }
                if (last != 0 && e.revision < last) {
                    problems.push_back(who + ": registry_loaded" + at + " after events up to revision " +
                                       std::to_string(last) + ": the revision line went backwards");
                }
                check_snapshot(s.name, e, problems);
                line = true;
                expect_snapshot = false;
                start = last = e.revision;
                last_type = e.type;
                last_instance.clear();
                continue;
            }
            if (e.type == "bookmark") {
                if (line && e.revision > last) {
                    problems.push_back(who + ": bookmark" + at + " ahead of the last event (revision " + std::to_string(last) +
                                       "): revisions " + std::to_string(last + 1) + ".." + std::to_string(e.revision) +
                                       " never arrived");
                }
                continue;
            }
            const std::string what = e.type + " " + e.instance + at + (e.replay ? " (replayed)" : "");
            if (!line || expect_snapshot) {
                problems.push_back(who + ": " + what + (expect_snapshot ? " between resync_required and registry_loaded"
                                                                        : " before any snapshot"));
                continue;
            }
            if (e.revision == last + 1) {
                // the next change
            } else if (e.revision == last && last_type == "lease_expired" && e.type == "service_deregistered" &&
                       e.instance == last_instance) {
                // the second event of the same change
            } else if (e.revision <= last) {
                problems.push_back(who + ": duplicate or out of order: " + what + " after " + last_type + " " + last_instance +
                                   " at revision " + std::to_string(last));
                continue;
            } else {
                problems.push_back(who + ": gap: revisions " + std::to_string(last + 1) + ".." +
                                   std::to_string(e.revision - 1) + " missing before " + what + " (after " + last_type +
                                   " " + last_instance + " at revision " + std::to_string(last) + ")");
                close_line();  // what follows is checked from here on
                line = true;
                start = e.revision - 1;
            }
            last = e.revision;
            last_type = e.type;
            last_instance = e.instance;
            by_revision[e.revision].push_back({e.type, e.instance, si});
        }
        close_line();
    }

    // One revision, one change, whoever saw it.
    for (const auto& [rev, list] : by_revision) {
        std::map<std::string, std::pair<std::string, std::size_t>> by_type;
        for (const seen& x : list) {
            auto [it, fresh] = by_type.try_emplace(x.type, x.instance, x.sub);
            if (!fresh && it->second.first != x.instance) {
                problems.push_back("revision " + std::to_string(rev) + " is " + x.type + " " + it->second.first +
                                   " for subscriber " + subscribers_[it->second.second].name + " but " + x.type + " " +
                                   x.instance + " for subscriber " + subscribers_[x.sub].name);
            }
        }
        std::set<std::string> kinds;
        for (const auto& [type, _] : by_type) kinds.insert(type);
        if (kinds.size() > 1 && kinds != std::set<std::string>{"lease_expired", "service_deregistered"}) {
            std::string all;
            for (const seen& x : list) all += " " + x.type + " " + x.instance + " (" + subscribers_[x.sub].name + ")";
            problems.push_back("revision " + std::to_string(rev) + " is several changes:" + all);
        }
    }

    // Every acknowledged change is the event at its revision, for every
    // subscriber that saw that revision.
    std::map<std::uint64_t, std::string> acknowledged;
    auto expect = [&](std::uint64_t rev, const std::string& type, const std::string& instance, const std::string& ack) {
        if (auto [it, fresh] = acknowledged.try_emplace(rev, ack); !fresh) {
            problems.push_back("revision " + std::to_string(rev) + " acknowledged twice: " + it->second + " and " + ack);
        }
        for (std::size_t si = 0; si < subscribers_.size(); ++si) {
            const bool saw = std::any_of(covered[si].begin(), covered[si].end(),
                                         [&](const auto& r) { return r.first < rev && rev <= r.second; });
            if (!saw) continue;
            const auto it = by_revision.find(rev);
            const bool match = it != by_revision.end() && std::any_of(it->second.begin(), it->second.end(), [&](const seen& x) {
                                   return x.sub == si && x.type == type && x.instance == instance;
                               });
            if (!match) {
                std::string got;
                if (it != by_revision.end()) {
                    for (const seen& x : it->second) {
                        if (x.sub == si) got += " " + x.type + " " + x.instance;
                    }
                }
                problems.push_back("subscriber " + subscribers_[si].name + ": revision " + std::to_string(rev) + " is" +
                                   (got.empty() ? " nothing" : got) + ", but " + ack + " was acknowledged at it");
            }
        }
    };
    for (const auto& [instance, l] : leases_) {
        expect(l.revision, "service_registered", instance, "register of " + instance + " (client " + l.client + ")");
        if (l.deregistered_revision) {
            expect(*l.deregistered_revision, "service_deregistered", instance, "deregister of " + instance);
        }
    }
    return problems;
}

void history_checker::check_snapshot(const std::string& sub, const stream_entry& e, std::vector<std::string>& problems) const {
    const std::set<std::string> in(e.services.begin(), e.services.end());
    const std::string which = "subscriber " + sub + ": registry_loaded at revision " + std::to_string(e.revision) +
                              " (received " + format_time(e.at) + ", " + std::to_string(in.size()) + " instances)";
    for (const auto& [instance, l] : leases_) {
        if (l.revision > e.revision) continue;
        const bool gone = l.deregistered_revision && *l.deregistered_revision <= e.revision;
        if (gone && in.contains(instance)) {
            problems.push_back(which + " has " + instance + ", whose deregistration was acknowledged at revision " +
                               std::to_string(*l.deregistered_revision));
        }
        if (!gone && !in.contains(instance) && l.deadline > e.at && !l.uncertain) {
            problems.push_back(which + " lacks " + instance + " (registered at revision " + std::to_string(l.revision) +
                               ", acknowledged deadline " + format_time(l.deadline) + ")");
        }
    }
}

std::vector<history_checker::outage> history_checker::outages() const {
    std::vector<outage> all = faults_;
    auto writes = writes_;
    std::sort(writes.begin(), writes.end());
    std::optional<wall::time_point> from;
    for (const auto& [at, acknowledged] : writes) {
        if (!acknowledged && !from) from = at;
        if (acknowledged && from) {
            all.push_back({"writes refused with unavailable", *from, at, true});
            from.reset();
        }
    }
    if (from) all.push_back({"writes refused with unavailable until the end", *from, wall::now() + 24h * 365, true});
    return all;
}

wall::time_point history_checker::latest_expiry(const lease_record& l, ms allowance) const {
    const auto ttl = std::chrono::seconds(l.ttl_seconds);
    wall::time_point latest = l.deadline + 1s + allowance;
    for (const outage& o : outages()) {
        if (l.deadline >= o.from - outage_lead && l.deadline <= o.to) {
            latest = std::max(latest, o.to + (o.ttl_again ? ttl : wall::duration::zero()) + 1s + allowance);
        }
    }
    return latest;
}

std::vector<std::string> history_checker::check_listing(const json::array& services, wall::time_point listed_at,
                                                        ms allowance) const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> problems;
    std::map<std::string, std::int64_t> listed;  // instance -> lease id
    for (const json::value& s : services) listed[str(s, "/instance_id")] = num(s, "/lease/id");
    for (const auto& [instance, l] : leases_) {
        const std::string who = instance + " (lease " + std::to_string(l.lease_id) + ", registered at revision " +
                                std::to_string(l.revision) + " by client " + l.client + ")";
        const auto found = listed.find(instance);
        if (l.deregistered_revision) {
            if (found != listed.end()) {
                problems.push_back(who + ": deregistered at revision " + std::to_string(*l.deregistered_revision) +
                                   " (acknowledged) but listed at " + format_time(listed_at));
            }
            continue;
        }
        if (l.uncertain || l.lost_at) continue;
        if (l.deadline > listed_at) {
            if (found == listed.end()) {
                problems.push_back(who + ": acknowledged, its deadline " + format_time(l.deadline) + " is " +
                                   std::to_string(ms_between(listed_at, l.deadline)) + " ms after the listing at " +
                                   format_time(listed_at) + ", but it is not listed");
            } else if (found->second != l.lease_id) {
                problems.push_back(who + ": listed with lease " + std::to_string(found->second));
            }
        }
        if (!l.renewed_by_client && !l.renewals && found != listed.end()) {
            const auto latest = latest_expiry(l, allowance);
            if (latest < listed_at) {
                problems.push_back(who + ": still listed at " + format_time(listed_at) + ", its deadline " +
                                   format_time(l.deadline) + " passed " + std::to_string(ms_between(l.deadline, listed_at)) +
                                   " ms before (it should have expired by " + format_time(latest) + ")");
            }
        }
    }
    return problems;
}

std::vector<std::string> history_checker::check_expiries(ms allowance) const {
    std::lock_guard lock(mutex_);
    std::vector<std::string> problems;
    struct expiry_seen {
        wall::time_point at;
        std::uint64_t revision;
        std::size_t sub;
    };
    std::map<std::string, std::optional<expiry_seen>> first, first_live;
    for (std::size_t si = 0; si < subscribers_.size(); ++si) {
        for (const stream_entry& e : subscribers_[si].entries) {
            if (e.what != stream_entry::kind::event || e.type != "lease_expired") continue;
            auto& f = first[e.instance];
            if (!f || e.at < f->at) f = expiry_seen{e.at, e.revision, si};
            if (!e.replay) {
                auto& fl = first_live[e.instance];
                if (!fl || e.at < fl->at) fl = expiry_seen{e.at, e.revision, si};
            }
        }
    }
    for (const auto& [instance, l] : leases_) {
        const std::string who = instance + " (lease " + std::to_string(l.lease_id) + ", TTL " +
                                std::to_string(l.ttl_seconds) + " s, registered at revision " + std::to_string(l.revision) +
                                " at " + format_time(l.registered_at) + (l.renewals ? ", renewed" : ", never renewed") + ")";
        const auto seen = first.find(instance);
        if (seen != first.end() && seen->second) {
            if (l.deregistered_revision) {
                problems.push_back(who + ": lease_expired at revision " + std::to_string(seen->second->revision) +
                                   " though it was deregistered at revision " + std::to_string(*l.deregistered_revision));
            } else if (seen->second->at < l.deadline - early_tolerance) {
                problems.push_back(who + ": lease_expired at revision " + std::to_string(seen->second->revision) +
                                   " reached subscriber " + subscribers_[seen->second->sub].name + " at " +
                                   format_time(seen->second->at) + ", " + std::to_string(ms_between(seen->second->at, l.deadline)) +
                                   " ms before its acknowledged deadline " + format_time(l.deadline));
            }
        }
        if (l.lost_at && *l.lost_at < l.deadline - early_tolerance) {
            problems.push_back(who + ": a keepalive was answered lease_not_found at " + format_time(*l.lost_at) + ", " +
                               std::to_string(ms_between(*l.lost_at, l.deadline)) + " ms before its acknowledged deadline " +
                               format_time(l.deadline));
        }
        const auto live = first_live.find(instance);
        if (!l.renewed_by_client && !l.renewals && !l.uncertain && !l.deregistered_revision && live != first_live.end() &&
            live->second) {
            const auto latest = latest_expiry(l, allowance);
            if (live->second->at > latest) {
                problems.push_back(who + ": lease_expired at revision " + std::to_string(live->second->revision) +
                                   " reached subscriber " + subscribers_[live->second->sub].name + " live at " +
                                   format_time(live->second->at) + ", " + std::to_string(ms_between(l.deadline, live->second->at)) +
                                   " ms after its deadline " + format_time(l.deadline) + " (allowed until " +
                                   format_time(latest) + ")");
            }
        }
    }
    return problems;
}

std::string history_checker::summary() const {
    std::lock_guard lock(mutex_);
    std::size_t registered = 0, kept = 0, deregistered = 0, uncertain = 0, lost = 0;
    for (const auto& [_, l] : leases_) {
        ++registered;
        kept += l.renewed_by_client ? 1 : 0;
        deregistered += l.deregistered_revision ? 1 : 0;
        uncertain += l.uncertain ? 1 : 0;
        lost += l.lost_at ? 1 : 0;
    }
    // How late leases left to expire were seen expired, live.
    std::int64_t late_max = 0, late_sum = 0, late_n = 0;
    for (const auto& [instance, l] : leases_) {
        if (l.renewed_by_client || l.renewals || l.uncertain || l.deregistered_revision) continue;
        std::optional<wall::time_point> at;
        for (const subscriber& s : subscribers_) {
            for (const stream_entry& e : s.entries) {
                if (e.what == stream_entry::kind::event && e.type == "lease_expired" && e.instance == instance && !e.replay &&
                    (!at || e.at < *at)) {
                    at = e.at;
                }
            }
        }
        if (!at) continue;
        const auto late = ms_between(l.deadline, *at);
        late_max = std::max(late_max, late);
        late_sum += late;
        ++late_n;
    }
    std::ostringstream out;
    out << "acknowledged: " << registered << " registrations (" << kept << " kept alive), " << renewals_
        << " renewals, " << deregistered << " deregistrations; uncertain " << uncertain << ", lost leases " << lost
        << "; refused writes:";
    for (const auto& [code, n] : refusals_) out << " " << code << " " << n;
    out << "; leases left to expire seen expired live: " << late_n;
    if (late_n) out << " (late by " << late_sum / late_n << " ms on average, " << late_max << " ms at most)";
    for (const subscriber& s : subscribers_) {
        std::size_t events = 0, subscribes = 0, resyncs = 0, replays = 0;
        std::string course;  // where it subscribed, and its resyncs
        for (const stream_entry& e : s.entries) {
            if (e.what == stream_entry::kind::subscribed) {
                ++subscribes;
                course += "; " + format_time(e.at) + " " + e.note +
                          (e.from_revision ? " from " + std::to_string(*e.from_revision) : std::string(" snapshot")) +
                          " at " + std::to_string(e.revision);
            }
            if (e.what == stream_entry::kind::event && e.type == "resync_required") course += " resync (" + e.note + ")";
            if (e.what != stream_entry::kind::event || e.type == "bookmark") continue;
            ++events;
            resyncs += e.type == "resync_required" ? 1 : 0;
            replays += e.replay ? 1 : 0;
        }
        out << "\n  subscriber " << s.name << ": " << events << " events (" << replays << " replayed), " << subscribes
            << " subscribes, " << resyncs << " resyncs, last revision " << (s.last ? std::to_string(*s.last) : "-")
            << course;
    }
    for (const outage& o : outages()) {
        out << "\n  " << o.what << ": " << format_time(o.from) << " .. "
            << (o.to > wall::now() + 24h ? std::string("end") : format_time(o.to));
    }
    return out.str();
}

}  // namespace it
