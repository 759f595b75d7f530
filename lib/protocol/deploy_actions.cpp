// The deployment actions (docs/protocol.md, "Deployment"): deploy_package,
// service_action, undeploy. They drive the server's deploy::deployer; the
// requester sees each stage as a deployment_progress event before the
// response.
#include "session.hpp"

#include "progress_encoder.hpp"
#include "response.hpp"
#include "server_impl.hpp"
#include "codec/service_record.hpp"

namespace registry::protocol {

namespace {

result<deploy::deployer*> deployer_of(server& srv) {
    deploy::deployer* d = srv.internals().deployer;
    if (!d) return fail(errc::unavailable, "deployment is not enabled on this server");
    return d;
}

}  // namespace

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

bool session::reply_encoded(call& c, std::string response) {
    c.answered = true;
    return send(frame{std::move(response), nullptr, frame_kind::response});
}

task<result<void>> session::on(call& c, deploy_package_params& p) {
    auto d = deployer_of(srv_);
    if (!d) co_return unexpected{d.err()};
    deploy::deploy_request req{p.path.value_or(""), false, p.target, p.name, p.version, id_, c.id};
    deploy::package_uploads* uploads = srv_.internals().uploads;
    if (p.upload_id) {
        if (!uploads) co_return fail(errc::unavailable, "package uploads are not enabled on this server");
        auto file = uploads->claim(*p.upload_id);
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
    auto report = [this, id = c.id](const deploy::progress& pr) { send(frame{encode_progress(id, pr), nullptr, frame_kind::event}); };
    auto done = co_await (*d)->deploy(std::move(req), report);
    if (!done) co_return unexpected{done.err()};
    reply_encoded(c, encode_response(c.id, [&](detail::json_writer& w) {
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
        w.key("revision").number(done->revision).end_object();
    }));
    co_return result<void>{};
}

task<result<void>> session::on(call& c, service_action_params& p) {
    auto d = deployer_of(srv_);
    if (!d) co_return unexpected{d.err()};
    auto report = [this, id = c.id](const deploy::progress& pr) { send(frame{encode_progress(id, pr), nullptr, frame_kind::event}); };
    auto done = co_await (*d)->control(p.instance_id, *deploy::parse_service_command(p.command), report);
    if (!done) co_return unexpected{done.err()};
    reply_encoded(c, encode_response(c.id, [&](detail::json_writer& w) {
        w.begin_object().key("service");
        write_service(w, **done);
        w.end_object();
    }));
    co_return result<void>{};
}

task<result<void>> session::on(call& c, undeploy_params& p) {
    auto d = deployer_of(srv_);
    if (!d) co_return unexpected{d.err()};
    auto report = [this, id = c.id](const deploy::progress& pr) { send(frame{encode_progress(id, pr), nullptr, frame_kind::event}); };
    auto done = co_await (*d)->undeploy(p.instance_id, report, p.force);
    if (!done) co_return unexpected{done.err()};
    reply_encoded(c, encode_response(c.id, [&](detail::json_writer& w) {
        w.begin_object().key("instance_id").string(p.instance_id).end_object();
    }));
    co_return result<void>{};
}

}  // namespace registry::protocol
