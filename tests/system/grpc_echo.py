"""Helpers for the gRPC system tests: tests/grpc/grpc_echo_server run as a
real process, python modules generated with protoc at test time (grpc_tools
is not installed), stubs made with channel.unary_unary & co., and a raw
HTTP/2 client that misbehaves on purpose (never reads, never answers PINGs,
sends garbage), written here so that it does exactly what a test says.
"""
import importlib
import os
import socket
import struct
import subprocess
import sys

from conftest import BUILD_DIR, NODE1, SANITIZED, parse_metrics, wait_for

SERVER = os.path.join(BUILD_DIR, "tests", "grpc", "grpc_echo_server")
SRC = os.path.join(os.path.dirname(__file__), "..", "..")
PROTO_DIRS = [os.path.join(SRC, "proto"), os.path.join(SRC, "tests", "grpc")]

SANITIZER_REPORT = ("runtime error:", "ERROR: AddressSanitizer", "ERROR: LeakSanitizer")


def generate_modules(outdir):
    """protoc --python_out for echo.proto and troika/v1/*.proto; returns
    (echo_pb2, agent_pb2, admin_pb2)."""
    files = ["echo.proto", "troika/v1/agent.proto", "troika/v1/admin.proto"]
    subprocess.run(["protoc", f"--python_out={outdir}"] +
                   [f"-I{d}" for d in PROTO_DIRS] + files, check=True)
    if str(outdir) not in sys.path:
        sys.path.insert(0, str(outdir))
    return (importlib.import_module("echo_pb2"),
            importlib.import_module("troika.v1.agent_pb2"),
            importlib.import_module("troika.v1.admin_pb2"))


class EchoServer:
    def __init__(self, procs, workdir, args=(), host=NODE1):
        self.procs = procs
        self.dir = workdir
        self.host = host
        self.out = workdir / "server.out"
        self.log = workdir / "server.log"
        self.out.write_text("")
        argv = [SERVER, "--debug", *args, host, "0"]
        self.proc = procs.start(argv, self.log)
        # The port comes on stdout: Procs sends both to the log file.
        self.port = wait_for(self._port, 10, what="grpc_echo_server port")

    def _port(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"server exited {self.proc.returncode}:\n{self.log_text()}")
        for line in self.log_text().splitlines():
            if line.startswith("port "):
                return int(line.split()[1])
        return None

    @property
    def target(self):
        return f"{self.host}:{self.port}"

    def log_text(self):
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return None

    def check_sanitizers(self):
        log = self.log_text()
        for marker in SANITIZER_REPORT:
            assert marker not in log, log[log.index(marker) - 200:][:4000]


class Stubs:
    """The test services' methods on one channel."""

    def __init__(self, channel, echo_pb2, agent_pb2, admin_pb2):
        def mk(kind, path, req, rep):
            return getattr(channel, kind)(path, request_serializer=req.SerializeToString,
                                          response_deserializer=rep.FromString)
        e = echo_pb2
        self.say = mk("unary_unary", "/troika.test.Echo/Say", e.EchoRequest, e.EchoReply)
        self.count = mk("unary_stream", "/troika.test.Echo/Count", e.EchoRequest, e.EchoReply)
        self.collect = mk("stream_unary", "/troika.test.Echo/Collect", e.EchoRequest,
                          e.EchoReply)
        self.chat = mk("stream_stream", "/troika.test.Echo/Chat", e.EchoRequest, e.EchoReply)
        self.metrics_rpc = mk("unary_unary", "/troika.test.Echo/Metrics", e.MetricsRequest,
                              e.MetricsReply)
        self.connect = mk("stream_stream", "/troika.v1.Agent/Connect", agent_pb2.AgentMessage,
                          agent_pb2.CoordinatorMessage)
        self.get_status = mk("unary_unary", "/troika.v1.Admin/GetStatus",
                             admin_pb2.GetStatusRequest, admin_pb2.GetStatusResponse)
        self.echo_pb2 = echo_pb2

    def metrics(self):
        rep = self.metrics_rpc(self.echo_pb2.MetricsRequest(), timeout=10)
        closed = dict(c.split("=") for c in rep.closed)
        return parse_metrics(rep.text), {k: int(v) for k, v in closed.items()}, rep

    def value(self, name, **labels):
        return self.metrics()[0].get((name, frozenset(labels.items())), 0)


# ---- a raw HTTP/2 client ----

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def _hpack_int(value, prefix_bits, first):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append(value % 128 + 128)
        value //= 128
    out.append(value)
    return bytes(out)


def hpack(headers):
    """Literal header fields without indexing, no Huffman (RFC 7541 6.2.2)."""
    out = b""
    for name, value in headers:
        n, v = name.encode(), value.encode()
        out += b"\x00" + _hpack_int(len(n), 7, 0) + n + _hpack_int(len(v), 7, 0) + v
    return out


def grpc_headers(path, extra=()):
    return hpack([(":method", "POST"), (":scheme", "http"), (":authority", "test"),
                  (":path", path), ("content-type", "application/grpc"),
                  ("te", "trailers"), *extra])


def grpc_message(payload, compressed=0, length=None):
    n = len(payload) if length is None else length
    return bytes([compressed]) + struct.pack(">I", n) + payload


class RawH2:
    """An HTTP/2 client socket that only does what it is told."""

    def __init__(self, host, port, timeout=5):
        self.sock = socket.create_connection((host, port), timeout=timeout)

    def handshake(self, window=None):
        settings = b""
        if window is not None:
            settings = struct.pack(">HI", 0x4, window)  # SETTINGS_INITIAL_WINDOW_SIZE
        self.sock.sendall(PREFACE + frame(SETTINGS, 0, 0, settings))

    def send(self, data):
        self.sock.sendall(data)

    def request(self, stream, path, body=b"", end=True, extra=()):
        self.send(frame(HEADERS, END_HEADERS, stream, grpc_headers(path, extra)))
        if body or end:
            self.send(frame(DATA, END_STREAM if end else 0, stream, body))

    def read_frames(self, until=None, timeout=5):
        """Read frames (type, flags, stream, payload) until until(frame) is
        true or the peer closes; returns (frames, closed)."""
        self.sock.settimeout(timeout)
        frames, buf = [], b""
        while True:
            while len(buf) >= 9:
                n = int.from_bytes(buf[:3], "big")
                if len(buf) < 9 + n:
                    break
                f = (buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7fffffff, buf[9:9 + n])
                buf = buf[9 + n:]
                frames.append(f)
                if f[0] == PING and not f[1] & ACK:
                    self.send(frame(PING, ACK, 0, f[3]))
                if f[0] == SETTINGS and not f[1] & ACK:
                    self.send(frame(SETTINGS, ACK, 0))
                if until is not None and until(f):
                    return frames, False
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                return frames, True
            if not chunk:
                return frames, True
            buf += chunk

    def closed_by_peer(self, timeout=5):
        """Wait for the server to close the connection, reading and
        discarding; True if it did."""
        self.sock.settimeout(timeout)
        try:
            while True:
                if not self.sock.recv(65536):
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()
