// send_floor: what the kernel alone charges for a fan-out on this machine.
//
// A server delivering one event to N subscribers makes at least one send per
// subscriber socket. This program opens N loopback TCP connections, and for
// each of --events events writes one --bytes message to every server-side
// socket, the way registryd's fan-out does, while a reader thread drains the
// client sides. It reports the sender's CPU time per delivery (the figure the
// fan-out's p99 cannot go below on one core) and the wall time per event:
//   write      one write() per socket (what an epoll-based server does)
//   io_uring   every socket's send queued in one ring and submitted with one
//              io_uring_enter per event (only when built with liburing)
// Output: one line of key=value pairs, like regbench's.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#ifdef SEND_FLOOR_HAS_URING
#include <liburing.h>
#endif

namespace {

struct options {
    int sockets = 1000;
    int events = 100;
    int bytes = 160;
    int interval_ms = 20;
    int sender_cpu = -1;
    int reader_cpu = -1;
};

[[noreturn]] void fail(const std::string& what) {
    std::fprintf(stderr, "send_floor: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

void pin(int cpu) {
    if (cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

double thread_cpu_us() {
    rusage r{};
    getrusage(RUSAGE_THREAD, &r);
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1e6 + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
}

struct measurement {
    double cpu_us_per_delivery;
    double event_p50_us;
    double event_p99_us;
};

// Runs `deliver` (one event to every socket) o.events times, o.interval_ms apart.
template <typename Deliver>
measurement measure(const options& o, Deliver&& deliver) {
    std::vector<double> wall;
    double cpu = 0;
    for (int e = 0; e < o.events; ++e) {
        const double c0 = thread_cpu_us();
        const auto t0 = std::chrono::steady_clock::now();
        deliver();
        wall.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
        cpu += thread_cpu_us() - c0;
        std::this_thread::sleep_for(std::chrono::milliseconds(o.interval_ms));
    }
    std::sort(wall.begin(), wall.end());
    return {cpu / o.events / o.sockets, wall[wall.size() / 2], wall[std::min(wall.size() - 1, wall.size() * 99 / 100)]};
}

}  // namespace

int main(int argc, char** argv) {
    options o;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string_view k = argv[i];
        const int v = std::atoi(argv[i + 1]);
        if (k == "--sockets") o.sockets = v;
        else if (k == "--events") o.events = v;
        else if (k == "--bytes") o.bytes = v;
        else if (k == "--interval-ms") o.interval_ms = v;
        else if (k == "--sender-cpu") o.sender_cpu = v;
        else if (k == "--reader-cpu") o.reader_cpu = v;
        else {
            std::fprintf(stderr, "send_floor: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (o.sockets < 1 || o.events < 1 || o.bytes < 1) {
        std::fprintf(stderr, "send_floor: --sockets, --events and --bytes must be positive\n");
        return 2;
    }

    rlimit rl{};
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);

    const int listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(listener, 4096) != 0 || getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
        fail("listen on 127.0.0.1");
    std::vector<int> server_side(o.sockets), client_side(o.sockets);
    for (int i = 0; i < o.sockets; ++i) {
        client_side[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (client_side[i] < 0 || connect(client_side[i], reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
            fail("connect");
        server_side[i] = accept(listener, nullptr, nullptr);
        if (server_side[i] < 0) fail("accept");
        const int one = 1;
        setsockopt(server_side[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }

    std::atomic<long> received{0};
    std::atomic<bool> stop{false};
    std::thread reader([&] {
        pin(o.reader_cpu);
        const int ep = epoll_create1(0);
        for (int fd : client_side) {
            epoll_event ev{};
            ev.events = EPOLLIN;
            ev.data.fd = fd;
            epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        std::vector<epoll_event> ready(1024);
        std::vector<char> buf(1 << 16);
        while (!stop) {
            const int n = epoll_wait(ep, ready.data(), static_cast<int>(ready.size()), 10);
            for (int j = 0; j < n; ++j) {
                const ssize_t r = read(ready[j].data.fd, buf.data(), buf.size());
                if (r > 0) received += r;
            }
        }
        close(ep);
    });
    pin(o.sender_cpu);

    const std::string message(static_cast<std::size_t>(o.bytes), 'x');
    long sent = 0;
    const measurement w = measure(o, [&] {
        for (int fd : server_side)
            if (write(fd, message.data(), message.size()) == o.bytes) sent += o.bytes;
    });
    std::printf("sockets=%d events=%d bytes=%d write_cpu_us_per_delivery=%.2f write_event_p50_us=%.0f "
                "write_event_p99_us=%.0f",
                o.sockets, o.events, o.bytes, w.cpu_us_per_delivery, w.event_p50_us, w.event_p99_us);

#ifdef SEND_FLOOR_HAS_URING
    io_uring ring{};
    const int entries = static_cast<int>(std::min<unsigned>(32768, std::bit_ceil(static_cast<unsigned>(o.sockets))));
    if (const int rc = io_uring_queue_init(entries, &ring, 0); rc == 0) {
        const measurement u = measure(o, [&] {
            int queued = 0;
            for (int fd : server_side) {
                io_uring_sqe* sqe = io_uring_get_sqe(&ring);
                if (!sqe) {  // the ring is full: submit what is queued and go on
                    io_uring_submit(&ring);
                    sqe = io_uring_get_sqe(&ring);
                }
                io_uring_prep_send(sqe, fd, message.data(), message.size(), 0);
                ++queued;
            }
            io_uring_submit_and_wait(&ring, static_cast<unsigned>(queued));
            int reaped = 0;
            while (reaped < queued) {
                io_uring_cqe* cqe = nullptr;
                if (io_uring_wait_cqe(&ring, &cqe) != 0) break;
                if (cqe->res == o.bytes) sent += o.bytes;
                io_uring_cqe_seen(&ring, cqe);
                ++reaped;
            }
        });
        io_uring_queue_exit(&ring);
        std::printf(" uring_cpu_us_per_delivery=%.2f uring_event_p50_us=%.0f uring_event_p99_us=%.0f",
                    u.cpu_us_per_delivery, u.event_p50_us, u.event_p99_us);
    } else {
        std::printf(" uring=unavailable(%s)", std::strerror(-rc));
    }
#endif

    // Let the reader drain what is still in flight before counting.
    for (int i = 0; i < 200 && received < sent; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stop = true;
    reader.join();
    std::printf(" sent_bytes=%ld received_bytes=%ld\n", sent, received.load());
    return received == sent ? 0 : 1;
}
