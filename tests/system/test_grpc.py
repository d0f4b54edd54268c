"""The core/lib gRPC server against clients nobody here wrote: Debian's
python3-grpcio (Google's gRPC core) and curl (nghttp2), through
tests/grpc/grpc_echo_server; plus a raw HTTP/2 client that misbehaves
(garbage, truncated frames, huge length prefixes, idle and half-open
connections, a peer that never reads). Each server is stopped with
SIGTERM at the end and must exit 0 (graceful shutdown, and no leaks
under ASan)."""
import os
import signal
import socket
import struct
import subprocess
import threading
import time

import grpc
import pytest

from conftest import NODE1, SANITIZED, parse_metrics, wait_for
from grpc_echo import (DATA, END_STREAM, GOAWAY, HEADERS, RST_STREAM, SERVER, EchoServer,
                       RawH2, Stubs, frame, generate_modules, grpc_message)


@pytest.fixture(scope="module")
def pb(tmp_path_factory):
    return generate_modules(tmp_path_factory.mktemp("pb"))


@pytest.fixture
def server(procs, tmp_path, pb):
    """server(*args) starts a grpc_echo_server; all are stopped with
    SIGTERM at the end and must exit 0 without sanitizer reports."""
    started, channels = [], []

    def start(*args, name="srv"):
        d = tmp_path / f"{name}{len(started)}"
        d.mkdir()
        s = EchoServer(procs, d, args)
        ch = grpc.insecure_channel(s.target)
        channels.append(ch)
        s.stubs = Stubs(ch, *pb)
        started.append(s)
        return s
    yield start
    for ch in channels:
        ch.close()
    for s in started:
        rc = procs.stop(s.proc, timeout=30)
        s.check_sanitizers()
        assert rc == 0, f"server exited {rc}:\n{s.log_text()[-4000:]}"


def req(pb, **kw):
    return pb[0].EchoRequest(**kw)


def test_unary(server, pb):
    s = server()
    rep = s.stubs.say(req(pb, text="hello"), timeout=5)
    assert rep.text == "hello"
    assert rep.seq == 0
    assert 4000 < rep.remaining_ms <= 5100
    # Without a deadline the handler sees none.
    assert s.stubs.say(req(pb, text="x")).remaining_ms == -1
    # Metadata reaches the handler.
    rep = s.stubs.say(req(pb, echo_metadata="x-troika-test"), timeout=5,
                      metadata=(("x-troika-test", "value 1"),))
    assert rep.text == "value 1"
    # An empty request message is a valid message.
    assert s.stubs.say(req(pb), timeout=5).text == ""


def test_streaming(server, pb):
    s = server()
    replies = list(s.stubs.count(req(pb, text="n", count=5), timeout=5))
    assert [r.text for r in replies] == ["n 0", "n 1", "n 2", "n 3", "n 4"]
    assert [r.seq for r in replies] == [0, 1, 2, 3, 4]
    # Paced replies arrive as they are sent.
    replies = list(s.stubs.count(req(pb, text="p", count=3, interval_ms=50), timeout=5))
    assert len(replies) == 3
    # Zero replies: a Trailers-Only OK.
    assert list(s.stubs.count(req(pb, text="z", count=0), timeout=5)) == []
    # Client streaming.
    rep = s.stubs.collect(iter([req(pb, text=str(i), payload=b"x" * 1000) for i in range(10)]),
                          timeout=5)
    assert (rep.text, rep.seq, rep.received) == ("0123456789", 10, 10000)
    # Bidirectional: answers come while the client still sends.
    rep = list(s.stubs.chat(iter([req(pb, text=f"m{i}") for i in range(100)]), timeout=10))
    assert [r.text for r in rep] == [f"m{i}" for i in range(100)]


def test_bidi_interleaved(server, pb):
    """Each answer is read before the next request is sent."""
    s = server()
    out = []
    cond = threading.Condition()

    def requests():
        for i in range(20):
            yield req(pb, text=f"q{i}")
            with cond:
                assert cond.wait_for(lambda: len(out) > i, 5)

    for r in s.stubs.chat(requests(), timeout=10):
        with cond:
            out.append(r.text)
            cond.notify()
    assert out == [f"q{i}" for i in range(20)]


def test_errors(server, pb):
    s = server()
    msg = "échec: 100% \n\tsure"
    for code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT,
                 grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.UNAVAILABLE,
                 grpc.StatusCode.INTERNAL, grpc.StatusCode.UNAUTHENTICATED):
        with pytest.raises(grpc.RpcError) as e:
            s.stubs.say(req(pb, fail_code=code.value[0], fail_message=msg), timeout=5)
        assert e.value.code() == code
        assert e.value.details() == msg
    # A status after messages: the messages first, then the error.
    got = []
    with pytest.raises(grpc.RpcError) as e:
        for r in s.stubs.count(req(pb, text="c", count=3, fail_code=10, fail_message="late"),
                               timeout=5):
            got.append(r.text)
    assert got == ["c 0", "c 1", "c 2"]
    assert e.value.code() == grpc.StatusCode.ABORTED
    assert e.value.details() == "late"
    # Bidi ended by the server with an error mid-stream.
    got = []
    with pytest.raises(grpc.RpcError) as e:
        for r in s.stubs.chat(iter([req(pb, text="a"), req(pb, fail_code=9, fail_message="stop"),
                                    req(pb, text="never")]), timeout=5):
            got.append(r.text)
    assert got == ["a"]
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    # A request that is not an EchoRequest.
    bad = grpc.insecure_channel(s.target).unary_unary("/troika.test.Echo/Say")
    with pytest.raises(grpc.RpcError) as e:
        bad(b"\xff\xff\xff", timeout=5)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == "cannot parse EchoRequest"
    m, closed, _ = s.stubs.metrics()
    assert closed["NOT_FOUND"] == 1
    assert closed["ABORTED"] == 1
    assert closed["INVALID_ARGUMENT"] == 2
    assert m[("grpc_server_handled_total", frozenset({
        "grpc_type": "unary", "grpc_service": "troika.test.Echo", "grpc_method": "Say",
        "grpc_code": "UNAUTHENTICATED"}.items()))] == 1


def test_unknown_method(server, pb):
    s = server()
    ch = grpc.insecure_channel(s.target)
    for path in ("/troika.test.Echo/Nope", "/no.Such/Service", "/troika.v1.Admin/Delete"):
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary(path)(b"", timeout=5)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert e.value.details() == f"unknown method {path}"
    # Streaming calls to an unknown method too.
    with pytest.raises(grpc.RpcError) as e:
        list(ch.stream_stream("/no.Such/Stream")(iter([b"a", b"b"]), timeout=5))
    assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED
    ch.close()
    assert s.stubs.value("troika_grpc_server_calls_handled_total",
                         grpc_code="UNIMPLEMENTED") == 4


def test_deadlines(server, pb):
    s = server()
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as e:
        s.stubs.say(req(pb, text="slow", delay_ms=3000), timeout=0.3)
    took = time.monotonic() - t0
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 0.25 < took < 2
    # A stream past its deadline ends too, after what was sent in time.
    got = []
    with pytest.raises(grpc.RpcError) as e:
        for r in s.stubs.count(req(pb, text="d", count=100, interval_ms=100), timeout=0.45):
            got.append(r.text)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert 3 <= len(got) <= 6
    # The server's own timer ended both calls: none stays open.
    def settled():
        _, closed, rep = s.stubs.metrics()
        n = closed.get("DEADLINE_EXCEEDED", 0) + closed.get("CANCELLED", 0)
        return rep.open_calls == 0 and n == 2
    wait_for(settled, 5, what="both calls closed")
    # The server ends a call whose client waits longer than it asked.
    with pytest.raises(grpc.RpcError) as e:
        s.stubs.say(req(pb, text="x", delay_ms=1000), timeout=0.2)
    assert e.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_message_size_limits(server, pb):
    s = server()
    big = req(pb, text="big", payload=b"x" * (4 * 1024 * 1024 + 1))
    with pytest.raises(grpc.RpcError) as e:
        s.stubs.say(big, timeout=10)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.value.details() == \
        f"received message larger than max ({big.ByteSize()} vs. 4194304)"
    # Just under the limit passes.
    rep = s.stubs.collect(iter([req(pb, payload=b"y" * (4 * 1024 * 1024 - 100))]), timeout=10)
    assert rep.received == 4 * 1024 * 1024 - 100
    # A reply over the limit is refused by the server itself.
    with pytest.raises(grpc.RpcError) as e:
        s.stubs.say(req(pb, text="r", reply_size=4 * 1024 * 1024 + 10), timeout=10)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert e.value.details() == "response message larger than max"
    # A smaller configured limit.
    s2 = server("--max-message", "1000")
    with pytest.raises(grpc.RpcError) as e:
        s2.stubs.say(req(pb, payload=b"z" * 1000), timeout=5)
    assert e.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert s2.stubs.say(req(pb, payload=b"z" * 900), timeout=5).text == ""


def test_agent_connect_and_admin_status(server, pb):
    _, agent_pb2, admin_pb2 = pb
    s = server()
    hello = agent_pb2.AgentMessage(hello=agent_pb2.Hello(
        node="node-1", version="0.1.0", start_time_unix_nano=123, fencing_token=7,
        plugins=[agent_pb2.Plugin(name="tcp", version="1",
                                  actions=[agent_pb2.Action(name="restart")])],
        checks=[agent_pb2.Check(name="web", plugin="tcp", interval_nano=5 * 10**9)]))
    result = agent_pb2.AgentMessage(check_result=agent_pb2.CheckResult(
        check="web", plugin="tcp", status=agent_pb2.CHECK_STATUS_CRITICAL,
        evidence=agent_pb2.EVIDENCE_CERTAIN, message="connection refused",
        duration_nano=1500000, time_unix_nano=1700000000 * 10**9, run=3,
        fields=[agent_pb2.Label(name="errno", value="ECONNREFUSED")]))
    beat = agent_pb2.AgentMessage(heartbeat=agent_pb2.Heartbeat(seq=1))
    sent = threading.Event()
    stop = threading.Event()

    def agent():
        yield hello
        yield result
        yield beat
        sent.set()
        stop.wait(10)

    call = s.stubs.connect(agent(), timeout=20)
    first = next(call)
    assert first.WhichOneof("body") == "welcome"
    assert first.welcome.coordinator == "echo"
    assert first.welcome.fencing_token == 7
    second = next(call)
    assert second.WhichOneof("body") == "heartbeat"
    assert second.heartbeat.seq == 1

    st = s.stubs.get_status(admin_pb2.GetStatusRequest(), timeout=5)
    assert st.coordinator == "echo"
    assert st.store == admin_pb2.STORE_KIND_LOCAL
    assert st.quorum and st.leader
    assert [n.node for n in st.nodes] == ["node-1"]
    node = st.nodes[0]
    assert node.connected and node.agent_version == "0.1.0"
    assert node.agent_start_time_unix_nano == 123
    assert len(node.checks) == 1
    c = node.checks[0]
    assert (c.check, c.plugin, c.status, c.evidence, c.message, c.run) == (
        "web", "tcp", agent_pb2.CHECK_STATUS_CRITICAL, agent_pb2.EVIDENCE_CERTAIN,
        "connection refused", 3)
    assert [(f.name, f.value) for f in c.fields] == [("errno", "ECONNREFUSED")]
    # Filtered by node.
    assert len(s.stubs.get_status(admin_pb2.GetStatusRequest(nodes=["node-2"]),
                                  timeout=5).nodes) == 0
    stop.set()
    assert list(call) == []
    assert call.code() == grpc.StatusCode.OK
    # Gone once the stream ended.
    wait_for(lambda: len(s.stubs.get_status(admin_pb2.GetStatusRequest(),
                                            timeout=5).nodes) == 0, 5, what="node gone")
    # The first message must be a Hello.
    with pytest.raises(grpc.RpcError) as e:
        list(s.stubs.connect(iter([beat]), timeout=5))
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert e.value.details() == "the first message must be a Hello"


def curl(target, path, body, *extra, ctype="application/grpc"):
    r = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-X", "POST",
                        "-H", f"content-type: {ctype}", "-H", "te: trailers",
                        "--data-binary", "@-", "-D", "-", "-o", "/dev/stderr",
                        "--max-time", "10", *extra, f"http://{target}{path}"],
                       input=body, capture_output=True, timeout=20)
    headers = {}
    for line in r.stdout.decode().splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("HTTP"):
            headers[name.strip().lower()] = value.strip()
        elif line.startswith("HTTP/"):
            headers[":status"] = line.split()[1]
    return r.returncode, headers, r.stderr


def test_curl_http2_prior_knowledge(server, pb):
    """A second, non-Python HTTP/2 client: curl (libcurl + nghttp2)."""
    s = server()
    msg = req(pb, text="from curl").SerializeToString()
    rc, headers, body = curl(s.target, "/troika.test.Echo/Say", grpc_message(msg))
    assert rc == 0
    assert headers[":status"] == "200"
    assert headers["content-type"] == "application/grpc"
    assert headers["grpc-status"] == "0"
    assert body[0] == 0 and struct.unpack(">I", body[1:5])[0] == len(body) - 5
    assert pb[0].EchoReply.FromString(body[5:]).text == "from curl"
    # Requests refused from their headers get an empty body here: curl
    # 7.88 hangs when a complete response overtakes its upload.
    # Unknown method: Trailers-Only.
    rc, headers, body = curl(s.target, "/troika.test.Echo/Nope", b"")
    assert (rc, headers[":status"], headers["grpc-status"], body) == (0, "200", "12", b"")
    assert headers["grpc-message"] == "unknown method /troika.test.Echo/Nope"
    # Not gRPC at all.
    rc, headers, _ = curl(s.target, "/troika.test.Echo/Say", b"", ctype="text/plain")
    assert headers[":status"] == "415"
    # A compressed message nobody negotiated.
    rc, headers, _ = curl(s.target, "/troika.test.Echo/Say", grpc_message(msg, compressed=1))
    assert headers["grpc-status"] == "13"
    assert headers["grpc-message"] == "compressed message without a negotiated grpc-encoding"
    # An encoding we do not speak.
    rc, headers, _ = curl(s.target, "/troika.test.Echo/Say", b"", "-H", "grpc-encoding: gzip")
    assert headers["grpc-status"] == "12"
    assert headers["grpc-accept-encoding"] == "identity"
    # HTTP/1.1 is not served: the connection is closed.
    r = subprocess.run(["curl", "-sS", "--http1.1", "--max-time", "5", "-o", "/dev/null",
                        f"http://{s.target}/"], capture_output=True, timeout=20)
    assert r.returncode != 0
    assert s.stubs.say(req(pb, text="still fine"), timeout=5).text == "still fine"


def test_metrics_pass_promtool(server, pb):
    s = server()
    s.stubs.say(req(pb, text="x"), timeout=5)
    list(s.stubs.chat(iter([req(pb, text="y")]), timeout=5))
    _, _, rep = s.stubs.metrics()
    r = subprocess.run(["promtool", "check", "metrics"], input=rep.text.encode(),
                       capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    m = parse_metrics(rep.text)
    lab = {"grpc_type": "bidi_stream", "grpc_service": "troika.test.Echo", "grpc_method": "Chat"}
    assert m[("grpc_server_started_total", frozenset(lab.items()))] == 1
    assert m[("grpc_server_msg_received_total", frozenset(lab.items()))] == 1
    assert m[("grpc_server_msg_sent_total", frozenset(lab.items()))] == 1
    assert m[("grpc_server_handling_seconds_count", frozenset(lab.items()))] == 1
    assert m[("troika_grpc_server_connections", frozenset())] == 1
    # The Metrics call itself is the one open call.
    assert m[("troika_grpc_server_calls", frozenset())] == 1


def rss(s):
    return s.rss_kib()


# ASan's shadow memory and quarantine make every allocation cost more.
RSS_FACTOR = 3 if SANITIZED else 1


def test_garbage_and_truncated_input(server, pb):
    s = server()
    before = s.stubs.value("troika_grpc_server_connections_closed_total",
                           reason="protocol_error")
    # Not HTTP/2 at all.
    c = RawH2(s.host, s.port)
    c.send(os.urandom(4096))
    assert c.closed_by_peer()
    c.close()
    # A valid preface, then a frame header that announces more than is sent,
    # and the connection closed half-way.
    c = RawH2(s.host, s.port)
    c.handshake()
    c.send(frame(HEADERS, 0x4, 1, b"")[:9] + b"\x00\x10")
    c.close()
    # A DATA frame on stream 0: a connection error, answered with GOAWAY.
    c = RawH2(s.host, s.port)
    c.handshake()
    c.send(frame(DATA, 0, 0, b"x"))
    frames, closed = c.read_frames(until=lambda f: f[0] == GOAWAY)
    assert frames[-1][0] == GOAWAY
    assert c.closed_by_peer()
    c.close()
    # A 100 MiB length prefix: refused at once, nothing allocated.
    c = RawH2(s.host, s.port)
    c.handshake()
    c.request(1, "/troika.test.Echo/Say", grpc_message(b"", length=100 * 1024 * 1024), end=False)
    frames, _ = c.read_frames(until=lambda f: f[2] == 1 and f[1] & END_STREAM)
    assert any(f[0] == HEADERS and f[2] == 1 for f in frames)
    c.close()
    wait_for(lambda: s.stubs.value("troika_grpc_server_calls_handled_total",
                                   grpc_code="RESOURCE_EXHAUSTED") == 1, 5,
             what="the 100 MiB call refused")
    assert s.stubs.value("troika_grpc_server_connections_closed_total",
                         reason="protocol_error") >= before + 2
    # Still serving.
    assert s.stubs.say(req(pb, text="ok"), timeout=5).text == "ok"


def test_slow_reader_is_cut_off(server, pb):
    """A client that asks for a lot and never reads: the call is reset
    once its output cap is reached; memory stays bounded."""
    s = server("--call-output-cap", str(4 * 1024 * 1024))
    rss0 = rss(s)
    c = RawH2(s.host, s.port)
    c.handshake()
    body = req(pb, text="flood", count=100000, reply_size=60000,
               ignore_flow_control=True).SerializeToString()
    c.request(1, "/troika.test.Echo/Count", grpc_message(body))
    # Never read, never give window: the server holds the 4 MiB cap at most.
    wait_for(lambda: s.stubs.value("troika_grpc_server_calls_reset_total",
                                   reason="output_cap") == 1, 10, what="the reset")
    m, closed, rep = s.stubs.metrics()
    assert closed["RESOURCE_EXHAUSTED"] == 1
    assert m[("troika_grpc_server_buffered_bytes", frozenset())] == 0
    grown = rss(s) - rss0
    print(f"slow reader: RSS grew by {grown} KiB")
    assert grown < 32 * 1024 * RSS_FACTOR
    # The stream was reset with ENHANCE_YOUR_CALM (0xb).
    frames, _ = c.read_frames(until=lambda f: f[0] == RST_STREAM and f[2] == 1)
    assert frames[-1][3] == b"\x00\x00\x00\x0b"
    c.close()
    assert s.stubs.say(req(pb, text="ok"), timeout=5).text == "ok"


def test_paced_stream(server, pb):
    """A producer that waits for drained(): a reading client gets all of a
    large stream; one that does not read stalls it, with no reset and
    little held, until it goes away."""
    s = server("--call-output-cap", str(1024 * 1024))
    n = 0
    for r in s.stubs.count(req(pb, text="big", count=300, reply_size=60000), timeout=30):
        assert len(r.payload) == 60000 and r.seq == n
        n += 1
    assert n == 300
    c = RawH2(s.host, s.port)
    c.handshake()
    body = req(pb, text="stall", count=100000, reply_size=60000).SerializeToString()
    c.request(1, "/troika.test.Echo/Count", grpc_message(body))
    wait_for(lambda: s.stubs.value("troika_grpc_server_buffered_bytes") > 0, 5,
             what="the stream to fill its window")
    time.sleep(0.5)
    held = s.stubs.value("troika_grpc_server_buffered_bytes")
    assert 0 < held <= 256 * 1024 + 60000 + 10
    assert s.stubs.value("troika_grpc_server_calls_reset_total", reason="output_cap") == 0
    c.close()
    wait_for(lambda: s.stubs.metrics()[2].open_calls == 0, 5, what="the call to end")
    assert s.stubs.metrics()[1]["CANCELLED"] == 1
    assert s.stubs.value("troika_grpc_server_buffered_bytes") == 0


def test_idle_and_half_open_connections(server, pb):
    """Thousands of connections that never finish their handshake, and
    half-open streams: the server stays up, serves a well-behaved client,
    closes them on its timeouts, and its memory stays bounded."""
    n = 2000
    s = server("--max-connections", str(n + 100), "--handshake-timeout", "2000",
               "--idle-timeout", "60000")
    rss0 = rss(s)
    idle = []
    for _ in range(n):
        idle.append(socket.create_connection((s.host, s.port), timeout=5))
    # Half-open streams: a request with no END_STREAM, on live connections.
    half = []
    for i in range(20):
        c = RawH2(s.host, s.port)
        c.handshake()
        for sid in range(1, 20, 2):
            c.request(sid, "/troika.test.Echo/Chat", grpc_message(b"\x0a\x01x"), end=False)
        half.append(c)
    wait_for(lambda: s.stubs.value("troika_grpc_server_connections") >= n + 21, 20,
             what="every connection accepted")
    t0 = time.monotonic()
    assert s.stubs.say(req(pb, text="served"), timeout=5).text == "served"
    print(f"with {n} idle connections: a call took {time.monotonic() - t0:.3f} s")
    wait_for(lambda: s.stubs.metrics()[2].open_calls == 20 * 10, 10,
             what="every half-open stream started")
    grown = rss(s) - rss0
    print(f"{n} idle connections and 200 half-open streams: RSS grew by {grown} KiB")
    assert grown < 64 * 1024 * RSS_FACTOR
    # The silent ones are closed after the handshake timeout.
    wait_for(lambda: s.stubs.value("troika_grpc_server_connections") <= 22, 15,
             what="idle connections closed")
    assert s.stubs.value("troika_grpc_server_connections_closed_total", reason="idle") == n
    for sock in idle:
        sock.close()
    for c in half:
        c.close()
    wait_for(lambda: s.stubs.metrics()[2].open_calls == 0, 10, what="half-open streams closed")


def test_connection_limit(server, pb):
    s = server("--max-connections", "5")
    socks = [socket.create_connection((s.host, s.port)) for _ in range(4)]
    # The stubs' channel is the fifth connection (made on first use).
    assert s.stubs.say(req(pb, text="in"), timeout=5).text == "in"
    extra = socket.create_connection((s.host, s.port))
    extra.settimeout(5)
    assert extra.recv(10) == b""
    extra.close()
    assert s.stubs.value("troika_grpc_server_connections_rejected_total") == 1
    for sock in socks:
        sock.close()
    assert s.stubs.say(req(pb, text="still"), timeout=5).text == "still"


def test_keepalive(server, pb):
    """PINGs probe connections with calls open; one that does not answer
    is closed. Idle connections are left to the idle timeout (gRPC core
    clients answer PINGs only once they have a call again)."""
    s = server("--keepalive", "200", "--keepalive-timeout", "200")
    # A grpcio stream lives through many PINGs.
    def slow():
        for i in range(3):
            yield req(pb, text=str(i))
            time.sleep(0.4)
    assert [r.text for r in s.stubs.chat(slow(), timeout=10)] == ["0", "1", "2"]
    # Idle for many keepalive periods: the connection stays.
    time.sleep(1)
    assert s.stubs.value("troika_grpc_server_connections_closed_total",
                         reason="keepalive") == 0
    # A peer that goes silent (never answers the PING) is closed.
    c = RawH2(s.host, s.port)
    c.handshake()
    c.request(1, "/troika.test.Echo/Chat", grpc_message(b""), end=False)
    time.sleep(0.1)
    c.sock.settimeout(5)
    t0 = time.monotonic()
    assert c.closed_by_peer(timeout=5) is True
    assert time.monotonic() - t0 < 2
    c.close()
    assert s.stubs.value("troika_grpc_server_connections_closed_total",
                         reason="keepalive") == 1


def test_graceful_shutdown(server, pb, procs):
    s = server("--grace", "1500")
    got = []
    err = []
    stop = threading.Event()

    def client():
        def reqs():
            yield req(pb, text="before")
            stop.wait(10)
        try:
            for r in s.stubs.chat(reqs(), timeout=15):
                got.append(r.text)
        except grpc.RpcError as e:
            err.append(e)

    t = threading.Thread(target=client)
    t.start()
    wait_for(lambda: got == ["before"], 5, what="the stream to run")
    t0 = time.monotonic()
    s.proc.send_signal(signal.SIGTERM)
    # A new connection is refused once the listener is closed.
    time.sleep(0.3)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((s.host, s.port), timeout=2)
    t.join(10)
    took = time.monotonic() - t0
    assert err and err[0].code() == grpc.StatusCode.UNAVAILABLE
    assert err[0].details() == "server shutting down"
    assert 1.4 < took < 5
    stop.set()
    assert s.proc.wait(10) == 0
    assert "stopped" in s.log_text()


def make_certs(d):
    """A CA, a server certificate for 127.0.1.1, a client certificate."""
    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)
    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
        "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=troika test CA")
    for name, ext in (("server", f"subjectAltName=IP:{NODE1}"), ("client", "")):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        (d / f"{name}.ext").write_text(ext + "\n" if ext else "basicConstraints=CA:FALSE\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    return {n: (d / n).read_bytes() for n in ("ca.crt", "server.crt", "server.key",
                                               "client.crt", "client.key")}


def test_tls_and_mutual_tls(server, pb, tmp_path):
    certs = make_certs(tmp_path)
    s = server("--tls-cert", str(tmp_path / "server.crt"),
               "--tls-key", str(tmp_path / "server.key"))
    creds = grpc.ssl_channel_credentials(root_certificates=certs["ca.crt"])
    with grpc.secure_channel(s.target, creds) as ch:
        stubs = Stubs(ch, *pb)
        assert stubs.say(req(pb, text="over tls"), timeout=5).text == "over tls"
        assert [r.text for r in stubs.count(req(pb, text="t", count=2), timeout=5)] == \
            ["t 0", "t 1"]
    # h2c against the TLS port fails.
    with grpc.insecure_channel(s.target) as ch:
        with pytest.raises(grpc.RpcError) as e:
            Stubs(ch, *pb).say(req(pb, text="x"), timeout=3)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE

    m = server("--tls-cert", str(tmp_path / "server.crt"), "--tls-key",
               str(tmp_path / "server.key"), "--tls-ca", str(tmp_path / "ca.crt"))
    with grpc.secure_channel(m.target, creds) as ch:
        with pytest.raises(grpc.RpcError) as e:
            Stubs(ch, *pb).say(req(pb, text="no cert"), timeout=3)
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE
    mcreds = grpc.ssl_channel_credentials(root_certificates=certs["ca.crt"],
                                          private_key=certs["client.key"],
                                          certificate_chain=certs["client.crt"])
    with grpc.secure_channel(m.target, mcreds) as ch:
        assert Stubs(ch, *pb).say(req(pb, text="mutual"), timeout=5).text == "mutual"
    # curl speaks h2 over TLS via ALPN too.
    r = subprocess.run(["curl", "-sS", "--http2", "--cacert", str(tmp_path / "ca.crt"),
                        "-X", "POST", "-H", "content-type: application/grpc",
                        "--data-binary", "@-", "-D", "-", "-o", "/dev/null", "--max-time", "10",
                        f"https://{s.target}/troika.test.Echo/Say"],
                       input=grpc_message(req(pb, text="c").SerializeToString()),
                       capture_output=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert "grpc-status: 0" in r.stdout.decode()
    assert r.stdout.decode().startswith("HTTP/2 200")
    # A client that offers only HTTP/1.1 in ALPN is refused in the handshake.
    r = subprocess.run(["curl", "-sS", "--http1.1", "--cacert", str(tmp_path / "ca.crt"),
                        "--max-time", "5", "-o", "/dev/null", f"https://{s.target}/"],
                       capture_output=True, timeout=20)
    assert r.returncode == 35, r  # CURLE_SSL_CONNECT_ERROR
    assert b"no application protocol" in r.stderr
    # Broken TLS files stop the server at start-up, saying why.
    for cert, key, ca, why in (
            ("server.crt", "client.key", None, "key values mismatch"),
            ("missing.crt", "server.key", None, "cannot load certificate"),
            ("server.crt", "server.key", "missing.crt", "cannot load CA")):
        argv = [SERVER, "--tls-cert", str(tmp_path / cert), "--tls-key", str(tmp_path / key)]
        if ca:
            argv += ["--tls-ca", str(tmp_path / ca)]
        r = subprocess.run(argv + [NODE1, "0"], capture_output=True, timeout=20)
        assert r.returncode == 1
        assert why in r.stderr.decode(), r.stderr
