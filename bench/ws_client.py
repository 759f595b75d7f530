# A minimal WebSocket client of registryd's protocol (RFC 6455, text frames,
# standard library only) for the benchmark scripts that drive registryd from
# Python (repl_bench.sh, member_engine_bench.sh): they add this folder to
# PYTHONPATH.
import base64
import json
import os
import socket
import struct


class WS:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.s = socket.create_connection((host, int(port)))
        key = base64.b64encode(os.urandom(16)).decode()
        self.s.sendall((f"GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.s.recv(4096)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        assert b" 101 " in head.split(b"\r\n")[0], head
        self.next_id = 0

    def send(self, obj):
        data = json.dumps(obj).encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81]) + (bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack(">H", n))
        self.s.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _need(self, k):
        while len(self.buf) < k:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError("registryd closed the connection")
            self.buf += chunk

    def recv(self):
        self._need(2)
        length = self.buf[1] & 0x7F
        off = 2
        if length == 126:
            self._need(4)
            length = struct.unpack(">H", self.buf[2:4])[0]
            off = 4
        elif length == 127:
            self._need(10)
            length = struct.unpack(">Q", self.buf[2:10])[0]
            off = 10
        self._need(off + length)
        payload, self.buf = self.buf[off:off + length], self.buf[off + length:]
        return json.loads(payload)

    # Sends a request and returns its response's data (events in between are dropped).
    def call(self, action, params=None):
        self.next_id += 1
        rid = str(self.next_id)
        self.send({"id": rid, "type": "request", "action": action, "params": params or {}})
        while True:
            m = self.recv()
            if m.get("type") == "response" and m.get("id") == rid:
                if "error" in m:
                    raise SystemExit(f"{action} failed: {m['error']}")
                return m["data"]


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]
