// The package upload actions (docs/protocol.md, "package_upload_begin"):
// package_upload_begin, package_upload_chunk, package_upload_status. They
// drive the server's deploy::package_uploads; each chunk is reported as a
// deployment_progress event (stage uploading) before its response.
#include "session.hpp"

#include "progress_encoder.hpp"
#include "server_impl.hpp"

namespace registry::protocol {

namespace {

result<deploy::package_uploads*> uploads_of(server& srv) {
    deploy::package_uploads* u = srv.internals().uploads;
    if (!u) return fail(errc::unavailable, "package uploads are not enabled on this server");
    return u;
}

void write_status(detail::json_writer& w, const deploy::upload_status& s) {
    w.key("upload_id").string(s.upload_id)
        .key("size").number(s.size)
        .key("received").number(s.received)
        .key("complete").boolean(s.complete)
        .key("expires_at_ms").number(s.expires_at.time_since_epoch().count());
}

}  // namespace

task<result<void>> session::on(call& c, package_upload_begin_params& p) {
    auto u = uploads_of(srv_);
    if (!u) co_return unexpected{u.err()};
    auto begun = co_await (*u)->begin(p.size, std::move(p.sha256));
    if (!begun) co_return unexpected{begun.err()};
    const std::size_t max_chunk = (*u)->options().max_chunk_bytes;
    reply(c, [&](detail::json_writer& w) {
        w.begin_object();
        write_status(w, *begun);
        w.key("max_chunk_bytes").number(max_chunk).end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, package_upload_chunk_params& p) {
    auto u = uploads_of(srv_);
    if (!u) co_return unexpected{u.err()};
    auto written = co_await (*u)->chunk(p.upload_id, p.offset, std::move(p.data));
    if (!written) co_return unexpected{written.err()};
    deploy::progress pr;
    pr.at = deploy::stage::uploading;
    pr.bytes = written->received;
    pr.bytes_total = written->size;
    pr.message = written->complete ? "received all " + std::to_string(written->size) + " bytes, sha256 verified"
                                   : "received " + std::to_string(written->received) + " of " +
                                         std::to_string(written->size) + " bytes";
    send(frame{encode_progress(c.id, pr), nullptr, frame_kind::event});
    reply(c, [&](detail::json_writer& w) {
        w.begin_object();
        write_status(w, *written);
        w.end_object();
    });
    co_return result<void>{};
}

task<result<void>> session::on(call& c, package_upload_status_params& p) {
    auto u = uploads_of(srv_);
    if (!u) co_return unexpected{u.err()};
    auto s = (*u)->status(p.upload_id);
    if (!s) co_return unexpected{s.err()};
    reply(c, [&](detail::json_writer& w) {
        w.begin_object();
        write_status(w, *s);
        w.end_object();
    });
    co_return result<void>{};
}

}  // namespace registry::protocol
