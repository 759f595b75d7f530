// The deploy module (docs/protocol.md, "Deployment" and
// "package_upload_begin"): deploy_package, service_action, undeploy on the
// embedder's deploy::deployer, and package_upload_begin/_chunk/_status on its
// deploy::package_uploads. The requester sees each stage (and each chunk) as
// a deployment_progress event before the response. The embedder registers it
// (protocol/deploy.hpp).
#include "actions.hpp"

#include "../request_context.hpp"
#include "../server_impl.hpp"
#include "codec/service_record.hpp"
#include "deploy/deploy_names.hpp"
#include "codec/time.hpp"

#include <registry/deploy/deployer.hpp>
#include <registry/deploy/package_uploads.hpp>
#include <registry/protocol/deploy.hpp>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace registry::protocol {

namespace {

// Deployment (docs/protocol.md, "Deployment").
struct deploy_package_params {
    static constexpr std::string_view action = "deploy_package";
    // Exactly one: an uploaded package, or an archive on the daemon's host.
    std::optional<std::string> upload_id;
    std::optional<std::string> path;
    std::string target = "local";
    std::optional<std::string> name;
    std::optional<std::string> version;
};

struct package_upload_begin_params {
    static constexpr std::string_view action = "package_upload_begin";
    std::uint64_t size = 0;
    std::string sha256;  // lowercased
};

struct package_upload_chunk_params {
    static constexpr std::string_view action = "package_upload_chunk";
    std::string upload_id;
    std::uint64_t offset = 0;
    std::string data;  // decoded from base64
};

struct package_upload_status_params {
    static constexpr std::string_view action = "package_upload_status";
    std::string upload_id;
};

struct service_action_params {
    static constexpr std::string_view action = "service_action";
    std::string instance_id;
    deploy::service_command command{};
};

struct undeploy_params {
    static constexpr std::string_view action = "undeploy";
    std::string instance_id;
    bool force = false;
};

}  // namespace

}  // namespace registry::protocol

namespace registry::detail {

using namespace protocol;  // the params types

static bool read_params(decoder& d, const params_element& e, const path& at, deploy_package_params& p) {
    static constexpr std::string_view names[] = {"upload_id", "path", "target", "name", "version"};
    members m{at, names};
    if (!open(d, e, m) || !optional(d, m, "upload_id", p.upload_id) || !optional(d, m, "path", p.path) ||
        !optional(d, m, "target", p.target) || !optional(d, m, "name", p.name) ||
        !optional(d, m, "version", p.version)) {
        return false;
    }
    if (p.upload_id.has_value() == p.path.has_value()) return d.fail(at, "exactly one of upload_id and path is required");
    if (p.path && (p.path->empty() || p.path->front() != '/')) return d.fail(at.member("path"), "must be an absolute path");
    return true;
}

// 64 hex digits, lowercased in place.
static bool check_sha256(decoder& d, const path& at, std::string& hex) {
    const bool ok = hex.size() == 64 && std::all_of(hex.begin(), hex.end(), [](char c) {
        return std::isxdigit(static_cast<unsigned char>(c)) != 0;
    });
    if (!ok) return d.fail(at, "must be 64 hexadecimal digits");
    for (char& c : hex) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return true;
}

// Standard base64 (RFC 4648 section 4) with padding; nothing else allowed.
static bool decode_base64(std::string_view in, std::string& out) {
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    if (in.size() % 4 != 0) return false;
    out.clear();
    out.reserve(in.size() / 4 * 3);
    for (std::size_t i = 0; i < in.size(); i += 4) {
        const bool last = i + 4 == in.size();
        const std::size_t pad = last ? (in[i + 3] == '=') + (in[i + 2] == '=' && in[i + 3] == '=') : 0;
        int v[4] = {0, 0, 0, 0};
        for (std::size_t k = 0; k < 4 - pad; ++k) {
            v[k] = value(in[i + k]);
            if (v[k] < 0) return false;
        }
        const std::uint32_t n = (static_cast<std::uint32_t>(v[0]) << 18) | (static_cast<std::uint32_t>(v[1]) << 12) |
                                (static_cast<std::uint32_t>(v[2]) << 6) | static_cast<std::uint32_t>(v[3]);
        out += static_cast<char>((n >> 16) & 0xff);
        if (pad < 2) out += static_cast<char>((n >> 8) & 0xff);
        if (pad < 1) out += static_cast<char>(n & 0xff);
    }
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, package_upload_begin_params& p) {
    static constexpr std::string_view names[] = {"size", "sha256"};
    members m{at, names};
    if (!open(d, e, m) || !required(d, m, "size", p.size) || !required(d, m, "sha256", p.sha256)) return false;
    if (p.size == 0) return d.fail(at.member("size"), "must be at least 1");
    return check_sha256(d, at.member("sha256"), p.sha256);
}

static bool read_params(decoder& d, const params_element& e, const path& at, package_upload_chunk_params& p) {
    static constexpr std::string_view names[] = {"upload_id", "offset", "data"};
    members m{at, names};
    std::string_view encoded;
    if (!open(d, e, m) || !required(d, m, "upload_id", p.upload_id) || !required(d, m, "offset", p.offset)) return false;
    auto data = m.get("data");
    if (!data) return d.fail(at.member("data"), "is required");
    if (data->get_string().get(encoded)) return d.fail(at.member("data"), "must be a string");
    if (encoded.empty()) return d.fail(at.member("data"), "must not be empty");
    if (!decode_base64(encoded, p.data)) return d.fail(at.member("data"), "must be base64 (RFC 4648, with padding)");
    return true;
}

static bool read_params(decoder& d, const params_element& e, const path& at, package_upload_status_params& p) {
    static constexpr std::string_view names[] = {"upload_id"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "upload_id", p.upload_id);
}

static bool read_params(decoder& d, const params_element& e, const path& at, service_action_params& p) {
    static constexpr std::string_view names[] = {"instance_id", "action"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "instance_id", p.instance_id) && required(d, m, "action", p.command);
}

static bool read_params(decoder& d, const params_element& e, const path& at, undeploy_params& p) {
    static constexpr std::string_view names[] = {"instance_id", "force"};
    members m{at, names};
    return open(d, e, m) && required(d, m, "instance_id", p.instance_id) && optional(d, m, "force", p.force);
}

}  // namespace registry::detail

namespace registry::protocol {

namespace {

// Either may be absent: its actions answer `unavailable`.
struct deploy_module final : module {
    deploy::deployer* deployer = nullptr;
    deploy::package_uploads* uploads = nullptr;
};

result<deploy::deployer*> deployer_of(deploy_module& m) {
    if (!m.deployer) return fail(errc::unavailable, "deployment is not enabled on this server");
    return m.deployer;
}

result<deploy::package_uploads*> uploads_of(deploy_module& m) {
    if (!m.uploads) return fail(errc::unavailable, "package uploads are not enabled on this server");
    return m.uploads;
}

// {"type":"event","event":"deployment_progress","request_id":..,"data":{..}}
std::string encode_progress(std::string_view request_id, const deploy::progress& p) {
    std::string text;
    detail::json_writer w(text);
    w.begin_object()
        .key("type").string("event")
        .key("event").string("deployment_progress")
        .key("request_id").string(request_id)
        .key("data").begin_object()
        .key("stage").string(deploy::to_string(p.at))
        .key("package").string(p.package)
        .key("version").string(p.version)
        .key("target").string(p.target)
        .key("message").string(p.message);
    if (p.bytes) w.key("bytes").number(*p.bytes);
    if (p.bytes_total) w.key("bytes_total").number(*p.bytes_total);
    if (p.exit_code) w.key("exit_code").number(*p.exit_code);
    if (p.exit_code || !p.output.empty()) w.key("output").string(p.output);
    w.end_object().end_object();
    return text;
}

// Reports each stage to the requester, as long as its connection lasts.
deploy::progress_sink progress_to(request_context& ctx) {
    return [events = ctx.channel(), id = ctx.id()](const deploy::progress& pr) mutable {
        events.send(encode_progress(id, pr));
    };
}

void write_status(detail::json_writer& w, const deploy::upload_status& s) {
    w.key("upload_id").string(s.upload_id)
        .key("size").number(s.size)
        .key("received").number(s.received)
        .key("complete").boolean(s.complete)
        .key("expires_at_ms").number(detail::ms(s.expires_at));
    if (s.owner != "anonymous") w.key("owner").string(s.owner);  // absent: access control off
}

task<result<void>> on(deploy_module& m, request_context& ctx, deploy_package_params& p) {
    ctx.set_target(p.name && p.version ? *p.name + "@" + *p.version : p.path ? *p.path : "upload " + p.upload_id.value_or(""));
    auto d = deployer_of(m);
    if (!d) co_return unexpected{d.err()};
    deploy::deploy_request req{p.path.value_or(""), false, p.target, p.name, p.version, ctx.connection_id(), ctx.id(),
                               ctx.caller()};
    deploy::package_uploads* uploads = m.uploads;
    if (p.upload_id) {
        if (!uploads) co_return fail(errc::unavailable, "package uploads are not enabled on this server");
        auto file = uploads->claim(*p.upload_id, ctx.caller());
        if (!file) co_return unexpected{file.err()};
        req.archive = std::move(*file);
        req.uploaded = true;
    }
    // The upload is deleted after this deploy, whatever its outcome.
    struct upload_release {
        deploy::package_uploads* uploads;
        std::optional<std::string> id;
        ~upload_release() {
            if (uploads && id) uploads->release(*id);
        }
    } release{uploads, p.upload_id};
    auto report = progress_to(ctx);
    auto done = co_await (*d)->deploy(std::move(req), report);
    if (!done) co_return unexpected{done.err()};
    ctx.set_target(done->name + "@" + done->version);
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object()
            .key("instance_id").string(done->instance_id)
            .key("name").string(done->name)
            .key("version").string(done->version)
            .key("install_dir").string(done->install_dir)
            .key("previous_version");
        if (done->previous_version) {
            w.string(*done->previous_version);
        } else {
            w.null();
        }
        w.key("revision").number(done->revision);
        if (!done->container_id.empty()) w.key("container_id").string(done->container_id).key("node").string(done->node);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(deploy_module& m, request_context& ctx, service_action_params& p) {
    ctx.set_target(p.instance_id);
    auto d = deployer_of(m);
    if (!d) co_return unexpected{d.err()};
    auto report = progress_to(ctx);
    auto done = co_await (*d)->control(p.instance_id, p.command, report, ctx.caller());
    if (!done) co_return unexpected{done.err()};
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("service");
        write_service(w, **done, ctx.caller().may_act_for((*done)->lease.holder));
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(deploy_module& m, request_context& ctx, undeploy_params& p) {
    ctx.set_target(p.instance_id);
    auto d = deployer_of(m);
    if (!d) co_return unexpected{d.err()};
    auto report = progress_to(ctx);
    auto done = co_await (*d)->undeploy(p.instance_id, report, p.force, ctx.caller());
    if (!done) co_return unexpected{done.err()};
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object().key("instance_id").string(p.instance_id).end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(deploy_module& m, request_context& ctx, package_upload_begin_params& p) {
    auto u = uploads_of(m);
    if (!u) co_return unexpected{u.err()};
    auto begun = co_await (*u)->begin(p.size, std::move(p.sha256), ctx.caller());
    if (!begun) co_return unexpected{begun.err()};
    ctx.set_target("upload " + begun->upload_id);
    const std::size_t max_chunk = (*u)->options().max_chunk_bytes;
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object();
        write_status(w, *begun);
        w.key("max_chunk_bytes").number(max_chunk).end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(deploy_module& m, request_context& ctx, package_upload_chunk_params& p) {
    ctx.set_target("upload " + p.upload_id);
    auto u = uploads_of(m);
    if (!u) co_return unexpected{u.err()};
    auto written = co_await (*u)->chunk(p.upload_id, p.offset, std::move(p.data), ctx.caller());
    if (!written) co_return unexpected{written.err()};
    deploy::progress pr;
    pr.at = deploy::stage::uploading;
    pr.bytes = written->received;
    pr.bytes_total = written->size;
    pr.message = written->complete ? "received all " + std::to_string(written->size) + " bytes, sha256 verified"
                                   : "received " + std::to_string(written->received) + " of " +
                                         std::to_string(written->size) + " bytes";
    ctx.event(encode_progress(ctx.id(), pr));
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object();
        write_status(w, *written);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> on(deploy_module& m, request_context& ctx, package_upload_status_params& p) {
    auto u = uploads_of(m);
    if (!u) co_return unexpected{u.err()};
    auto s = (*u)->status(p.upload_id, ctx.caller());
    if (!s) co_return unexpected{s.err()};
    ctx.reply([&](detail::json_writer& w) {
        w.begin_object();
        write_status(w, *s);
        w.end_object();
    });
    co_return result<void>{};
}

}  // namespace

std::unique_ptr<module> add_deploy_entries(dispatch_table& t, bool reading_only) {
    std::unique_ptr<deploy_module> m;
    if (!reading_only) m = std::make_unique<deploy_module>();
    using M = deploy_module;
    using enum permission_family;
    using detail::read_params;
    t.add(make_action<M, deploy_package_params, &read_params, &on>(deploy, m.get()));
    t.add(make_action<M, service_action_params, &read_params, &on>(deploy, m.get()));
    t.add(make_action<M, undeploy_params, &read_params, &on>(deploy, m.get()));
    t.add(make_action<M, package_upload_begin_params, &read_params, &on>(deploy, m.get()));
    t.add(make_action<M, package_upload_chunk_params, &read_params, &on>(deploy, m.get()));
    t.add(make_action<M, package_upload_status_params, &read_params, &on>(deploy, m.get()));
    return m;
}

namespace {

// The server's deploy module, registered on first use.
deploy_module& module_of(server& srv) {
    auto& shared = srv.internals();
    for (const auto& owned : shared.modules) {
        if (auto* m = dynamic_cast<deploy_module*>(owned.get())) return *m;
    }
    auto added = add_deploy_entries(shared.actions, false);
    auto& m = static_cast<deploy_module&>(*added);
    shared.own(std::move(added));
    return m;
}

}  // namespace

void add_deploy_actions(server& srv, deploy::deployer* d, deploy::package_uploads* u) {
    deploy_module& m = module_of(srv);
    m.deployer = d;
    m.uploads = u;
}

}  // namespace registry::protocol
