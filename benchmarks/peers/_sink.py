"""
A fast OTLP/gRPC receiver for the telemetry rows: it answers each export at once and keeps the
request bytes, decoding them only when asked (``GET /spans``). A receiver that decodes before
answering (``tests/integration/otlp_sink.py`` turns every request into JSON first) would put its
own speed into the exporter's wall time, which the telemetry samples include.

Usage: ``python _sink.py`` (our venv: grpcio and opentelemetry-proto). The first stdout line is
``peer sink: grpc 127.0.0.1:PORT http 127.0.0.1:PORT``. HTTP: ``GET /spans`` returns
``{"spans": N, "by_name": {...}, "metric_requests": M}`` for everything received since the last
``POST /reset``. Stops on SIGTERM.
"""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tpb

SERVICES = {
    "opentelemetry.proto.collector.trace.v1.TraceService": "traces",
    "opentelemetry.proto.collector.metrics.v1.MetricsService": "metrics",
    "opentelemetry.proto.collector.logs.v1.LogsService": "logs",
}
_raw: dict[str, list[bytes]] = {k: [] for k in SERVICES.values()}
_lock = threading.Lock()


def _raw_bytes(b: bytes) -> bytes:
    return b


def _handler(kind: str) -> grpc.RpcMethodHandler:
    def export(request: bytes, context: Any) -> bytes:
        with _lock:
            _raw[kind].append(request)
        return b""  # an empty Export*ServiceResponse

    return grpc.unary_unary_rpc_method_handler(
        export, request_deserializer=_raw_bytes, response_serializer=_raw_bytes
    )


def summary() -> dict[str, Any]:
    with _lock:
        traces, metric_requests = list(_raw["traces"]), len(_raw["metrics"])
    names: Counter[str] = Counter()
    for raw in traces:
        req = tpb.ExportTraceServiceRequest.FromString(raw)
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                names.update(sp.name for sp in ss.spans)
    return {
        "spans": sum(names.values()),
        "by_name": dict(names.most_common()),
        "metric_requests": metric_requests,
    }


class _Http(BaseHTTPRequestHandler):
    def _send(self, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/spans":
            self._send(summary())
        else:
            self.send_error(404)

    def do_POST(self) -> None:
        if self.path == "/reset":
            with _lock:
                for v in _raw.values():
                    v.clear()
            self._send({"reset": True})
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main() -> int:
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=4),
        options=[("grpc.max_receive_message_length", 64 << 20)],
    )
    for service, kind in SERVICES.items():
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(service, {"Export": _handler(kind)}),)
        )
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    http = ThreadingHTTPServer(("127.0.0.1", 0), _Http)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    print(
        f"peer sink: grpc 127.0.0.1:{grpc_port} http 127.0.0.1:{http.server_address[1]}", flush=True
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    http.shutdown()
    server.stop(1).wait(5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
