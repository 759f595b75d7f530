// etcd's two client paths on the same workloads (docs/etcd-client.md):
//   gateway  POST /v3/kv/... JSON (base64 keys and values) through the
//            daemon's own HTTP client (engine/engine_http.hpp), exactly as
//            store/etcd_store_port.cpp calls it: one connection per request
//   grpc     etcd's gRPC API through grpc++ (one channel, HTTP/2, the async
//            completion-queue API on one thread)
// Workloads: put of one key with a 100-byte value, one at a time and 64 in
// flight; a txn of 2 puts; a range of one key. For each: ops/s, p50/p99
// latency, CPU of this process (user+sys) and of etcd (--etcd-pid) per op.
//
//   etcd_client_bench --endpoint 127.0.0.1:2379 [--ops 2000] [--etcd-pid PID]
#include "engine/engine_http.hpp"
#include "store/base64.hpp"

#include "codec/json_writer.hpp"

#include "etcd_rpc_subset.grpc.pb.h"

#include <registry/async_scope.hpp>

#include <boost/asio/io_context.hpp>
#include <grpcpp/grpcpp.h>

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using steady = std::chrono::steady_clock;
namespace pb = etcdserverpb;

const std::string value(100, 'v');
std::string key(std::size_t i) { return "/bench/key-" + std::to_string(i % 1000); }

double cpu_seconds_self() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// utime + stime of another process, from /proc/PID/stat (0 without a pid).
double cpu_seconds_of(long pid) {
    if (pid <= 0) return 0;
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(in)), {});
    const auto close = stat.rfind(')');
    if (close == std::string::npos) return 0;
    std::vector<std::string> fields;
    std::string f;
    for (char c : stat.substr(close + 2)) {
        if (c == ' ') {
            fields.push_back(f);
            f.clear();
        } else {
            f += c;
        }
    }
    // Fields after the name start at field 3 (state): utime is 14, stime 15.
    if (fields.size() < 13) return 0;
    return (std::stod(fields[11]) + std::stod(fields[12])) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

struct figures {
    std::vector<double> latencies_us;
    double seconds = 0;
    double cpu = 0;
    double etcd_cpu = 0;
    std::size_t failed = 0;
};

void print(const std::string& path, const std::string& workload, std::size_t in_flight, figures& f) {
    auto& l = f.latencies_us;
    std::sort(l.begin(), l.end());
    auto pct = [&](double p) { return l.empty() ? 0.0 : l[std::min(l.size() - 1, static_cast<std::size_t>(p * l.size()))]; };
    const double n = static_cast<double>(l.size());
    std::printf("%-8s %-10s %4zu %8zu %10.0f %9.0f %9.0f %9.1f %9.1f %6zu\n", path.c_str(), workload.c_str(), in_flight,
                l.size(), n / f.seconds, pct(0.50), pct(0.99), f.cpu / n * 1e6, f.etcd_cpu / n * 1e6, f.failed);
    std::fflush(stdout);
}

// ---------------------------------------------------------------- gateway

struct gateway_call {
    std::string target;
    std::function<std::string(std::size_t)> body;
};

std::string gw_put_body(std::size_t i) {
    std::string b;
    registry::detail::json_writer w(b);
    w.begin_object().key("key").string(registryd::base64_encode(key(i))).key("value").string(
        registryd::base64_encode(value)).end_object();
    return b;
}

std::string gw_txn_body(std::size_t i) {
    std::string b;
    registry::detail::json_writer w(b);
    w.begin_object().key("success").begin_array();
    for (std::size_t k = 0; k < 2; ++k) {
        w.begin_object().key("request_put").begin_object().key("key").string(registryd::base64_encode(key(2 * i + k)))
            .key("value").string(registryd::base64_encode(value)).end_object().end_object();
    }
    w.end_array().end_object();
    return b;
}

std::string gw_range_body(std::size_t i) {
    std::string b;
    registry::detail::json_writer w(b);
    w.begin_object().key("key").string(registryd::base64_encode(key(i))).end_object();
    return b;
}

registry::task<void> gw_worker(registryd::engine_http_client& client, const gateway_call& call, std::size_t& next,
                               std::size_t total, figures& f) {
    while (next < total) {
        const std::size_t i = next++;
        registryd::http_request req{"POST", call.target, call.body(i), "application/json", false};
        const auto t0 = steady::now();
        auto r = co_await client.request(std::move(req));
        const auto t1 = steady::now();
        if (!r || r->status != 200) {
            ++f.failed;
            if (f.failed == 1) std::fprintf(stderr, "gateway: %s\n", r ? r->body.c_str() : r.err().message.c_str());
            continue;
        }
        f.latencies_us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
}

figures run_gateway(const std::string& endpoint, const gateway_call& call, std::size_t total, std::size_t in_flight,
                    long etcd_pid) {
    boost::asio::io_context io{1};
    auto ep = registryd::engine_endpoint::parse("tcp://" + endpoint);
    if (!ep) throw std::runtime_error(ep.err().message);
    registryd::http_client_options o;
    o.connect_timeout = std::chrono::milliseconds(2000);
    o.request_timeout = std::chrono::milliseconds(5000);
    o.peer_kind = "etcd";
    registryd::engine_http_client client(io, *ep, o);
    figures f;
    std::size_t next = 0;
    registry::async_scope scope;
    const double cpu0 = cpu_seconds_self(), e0 = cpu_seconds_of(etcd_pid);
    const auto t0 = steady::now();
    for (std::size_t w = 0; w < in_flight; ++w) scope.spawn(gw_worker(client, call, next, total, f));
    io.run();
    f.seconds = std::chrono::duration<double>(steady::now() - t0).count();
    f.cpu = cpu_seconds_self() - cpu0;
    f.etcd_cpu = cpu_seconds_of(etcd_pid) - e0;
    return f;
}

// ---------------------------------------------------------------- gRPC

struct grpc_slot {
    std::unique_ptr<grpc::ClientContext> ctx;
    grpc::Status status;
    steady::time_point started;
    virtual ~grpc_slot() = default;
    virtual void start(std::size_t i, grpc::CompletionQueue* cq) = 0;
};

template <typename Req, typename Resp>
struct typed_slot : grpc_slot {
    using prepare_fn = std::function<std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>>(
        grpc::ClientContext*, const Req&, grpc::CompletionQueue*)>;
    prepare_fn prepare;
    std::function<Req(std::size_t)> make;
    Req req;
    Resp resp;
    std::unique_ptr<grpc::ClientAsyncResponseReader<Resp>> rpc;

    void start(std::size_t i, grpc::CompletionQueue* cq) override {
        ctx = std::make_unique<grpc::ClientContext>();
        ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        req = make(i);
        resp.Clear();
        started = steady::now();
        rpc = prepare(ctx.get(), req, cq);
        rpc->StartCall();
        rpc->Finish(&resp, &status, this);
    }
};

template <typename Req, typename Resp>
figures run_grpc(typename typed_slot<Req, Resp>::prepare_fn prepare, std::function<Req(std::size_t)> make,
                 std::size_t total, std::size_t in_flight, long etcd_pid) {
    grpc::CompletionQueue cq;
    std::vector<std::unique_ptr<typed_slot<Req, Resp>>> slots;
    figures f;
    const double cpu0 = cpu_seconds_self(), e0 = cpu_seconds_of(etcd_pid);
    const auto t0 = steady::now();
    std::size_t issued = 0, done = 0;
    for (std::size_t s = 0; s < in_flight && issued < total; ++s) {
        auto slot = std::make_unique<typed_slot<Req, Resp>>();
        slot->prepare = prepare;
        slot->make = make;
        slot->start(issued++, &cq);
        slots.push_back(std::move(slot));
    }
    while (done < total) {
        void* tag = nullptr;
        bool ok = false;
        if (!cq.Next(&tag, &ok)) break;
        auto* slot = static_cast<grpc_slot*>(tag);
        ++done;
        if (!ok || !slot->status.ok()) {
            ++f.failed;
            if (f.failed == 1) std::fprintf(stderr, "grpc: %s\n", slot->status.error_message().c_str());
        } else {
            f.latencies_us.push_back(std::chrono::duration<double, std::micro>(steady::now() - slot->started).count());
        }
        if (issued < total) slot->start(issued++, &cq);
    }
    f.seconds = std::chrono::duration<double>(steady::now() - t0).count();
    f.cpu = cpu_seconds_self() - cpu0;
    f.etcd_cpu = cpu_seconds_of(etcd_pid) - e0;
    cq.Shutdown();
    void* tag = nullptr;
    bool ok = false;
    while (cq.Next(&tag, &ok)) {
    }
    return f;
}

pb::PutRequest grpc_put(std::size_t i) {
    pb::PutRequest r;
    r.set_key(key(i));
    r.set_value(value);
    return r;
}

pb::TxnRequest grpc_txn(std::size_t i) {
    pb::TxnRequest r;
    for (std::size_t k = 0; k < 2; ++k) {
        auto* put = r.add_success()->mutable_request_put();
        put->set_key(key(2 * i + k));
        put->set_value(value);
    }
    return r;
}

pb::RangeRequest grpc_range(std::size_t i) {
    pb::RangeRequest r;
    r.set_key(key(i));
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    std::string endpoint = "127.0.0.1:2379";
    std::size_t ops = 2000;
    long etcd_pid = 0;
    std::string only;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--endpoint") endpoint = argv[i + 1];
        else if (a == "--ops") ops = std::stoul(argv[i + 1]);
        else if (a == "--etcd-pid") etcd_pid = std::stol(argv[i + 1]);
        else if (a == "--only") only = argv[i + 1];  // gateway or grpc
        else {
            std::fprintf(stderr, "usage: etcd_client_bench --endpoint HOST:PORT [--ops N] [--etcd-pid PID] [--only gateway|grpc]\n");
            return 2;
        }
    }

    auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5))) {
        std::fprintf(stderr, "etcd at %s: no gRPC connection\n", endpoint.c_str());
        return 1;
    }
    auto kv = pb::KV::NewStub(channel);
    using put_reader = std::unique_ptr<grpc::ClientAsyncResponseReader<pb::PutResponse>>;
    auto put = [&](grpc::ClientContext* c, const pb::PutRequest& r, grpc::CompletionQueue* q) -> put_reader {
        return kv->PrepareAsyncPut(c, r, q);
    };
    auto txn = [&](grpc::ClientContext* c, const pb::TxnRequest& r, grpc::CompletionQueue* q) {
        return kv->PrepareAsyncTxn(c, r, q);
    };
    auto range = [&](grpc::ClientContext* c, const pb::RangeRequest& r, grpc::CompletionQueue* q) {
        return kv->PrepareAsyncRange(c, r, q);
    };
    // Warm both paths (connection, etcd's own caches); every key exists for the ranges.
    run_grpc<pb::PutRequest, pb::PutResponse>(put, grpc_put, 1000, 64, 0);
    run_gateway(endpoint, {"/v3/kv/put", gw_put_body}, 200, 8, 0);

    std::printf("%-8s %-10s %4s %8s %10s %9s %9s %9s %9s %6s\n", "path", "workload", "fly", "ops", "ops/s", "p50_us",
                "p99_us", "cpu_us/op", "etcd_us/op", "failed");
    struct workload {
        std::string name;
        std::size_t in_flight;
    };
    const std::vector<workload> workloads{{"put", 1}, {"put", 64}, {"txn2", 1}, {"txn2", 64}, {"range", 1}, {"range", 64}};
    for (const auto& w : workloads) {
        const std::size_t n = w.in_flight == 1 ? ops : ops * 4;
        if (only.empty() || only == "gateway") {
            const gateway_call call = w.name == "put"    ? gateway_call{"/v3/kv/put", gw_put_body}
                                      : w.name == "txn2" ? gateway_call{"/v3/kv/txn", gw_txn_body}
                                                         : gateway_call{"/v3/kv/range", gw_range_body};
            auto f = run_gateway(endpoint, call, n, w.in_flight, etcd_pid);
            print("gateway", w.name, w.in_flight, f);
        }
        if (only.empty() || only == "grpc") {
            figures f;
            if (w.name == "put") {
                f = run_grpc<pb::PutRequest, pb::PutResponse>(put, grpc_put, n, w.in_flight, etcd_pid);
            } else if (w.name == "txn2") {
                f = run_grpc<pb::TxnRequest, pb::TxnResponse>(txn, grpc_txn, n, w.in_flight, etcd_pid);
            } else {
                f = run_grpc<pb::RangeRequest, pb::RangeResponse>(range, grpc_range, n, w.in_flight, etcd_pid);
            }
            print("grpc", w.name, w.in_flight, f);
        }
    }
    return 0;
}
