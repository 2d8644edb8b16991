"""
A minimal, real OTLP receiver for tests: traces, metrics and logs over gRPC and HTTP.

Usage: ``python otlp_sink.py GRPC_PORT HTTP_PORT`` (``0`` picks a free port; the ports actually
bound are printed on the first stdout line).

- gRPC on ``127.0.0.1:GRPC_PORT``: the Trace, Metrics and Logs collector services.
- HTTP on ``127.0.0.1:HTTP_PORT``: ``POST /v1/{traces,metrics,logs}`` (protobuf or JSON, optional
  gzip), ``GET /healthz`` (readiness), ``GET /debug/{traces,metrics,logs}`` (everything received,
  as a JSON list of OTLP/JSON export requests) and ``POST /debug/reset``.

Built from ``opentelemetry-proto`` + ``grpcio`` only (no Collector binary is installed on the
CI machines, so the tests cannot rely on one). Stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import gzip
import json
import signal
import sys
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2 as lpb
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc as lgrpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as mpb
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc as mgrpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as tpb
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc as tgrpc

KINDS = ("traces", "metrics", "logs")
_store: dict[str, list[dict[str, Any]]] = {k: [] for k in KINDS}
_lock = threading.Lock()


def _keep(kind: str, request: Message) -> None:
    doc = json_format.MessageToDict(request)
    with _lock:
        _store[kind].append(doc)


class _Traces(tgrpc.TraceServiceServicer):
    def Export(self, request: Any, context: Any) -> Any:
        _keep("traces", request)
        return tpb.ExportTraceServiceResponse()


class _Metrics(mgrpc.MetricsServiceServicer):
    def Export(self, request: Any, context: Any) -> Any:
        _keep("metrics", request)
        return mpb.ExportMetricsServiceResponse()


class _Logs(lgrpc.LogsServiceServicer):
    def Export(self, request: Any, context: Any) -> Any:
        _keep("logs", request)
        return lpb.ExportLogsServiceResponse()


_ROUTES: dict[str, tuple[str, Any, Any]] = {
    "/v1/traces": ("traces", tpb.ExportTraceServiceRequest, tpb.ExportTraceServiceResponse),
    "/v1/metrics": ("metrics", mpb.ExportMetricsServiceRequest, mpb.ExportMetricsServiceResponse),
    "/v1/logs": ("logs", lpb.ExportLogsServiceRequest, lpb.ExportLogsServiceResponse),
}


class _Http(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(self, code: int, body: bytes, ctype: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path == "/debug/reset":
            with _lock:
                for kind in KINDS:
                    _store[kind].clear()
            return self._send(200, b"ok", "text/plain")
        route = _ROUTES.get(path)
        if route is None:
            return self._send(404, b"not found", "text/plain")
        kind, request_type, response_type = route
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                raw = gzip.decompress(raw)
            request = request_type()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                json_format.Parse(raw, request)
                _keep(kind, request)
                body = json_format.MessageToJson(response_type()).encode()
                return self._send(200, body, "application/json")
            request.ParseFromString(raw)
        except (OSError, DecodeError, json_format.ParseError) as exc:
            return self._send(400, f"bad request: {exc}".encode(), "text/plain")
        _keep(kind, request)
        self._send(200, response_type().SerializeToString(), "application/x-protobuf")

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            return self._send(200, b"ok", "text/plain")
        kind = path.rsplit("/", 1)[-1]
        if path.startswith("/debug/") and kind in _store:
            with _lock:
                body = json.dumps(_store[kind]).encode()
            return self._send(200, body, "application/json")
        self._send(404, b"not found", "text/plain")


def _stop(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(f"usage: {argv[0]} GRPC_PORT HTTP_PORT", file=sys.stderr)
        return 2
    grpc_port, http_port = int(argv[1]), int(argv[2])
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    tgrpc.add_TraceServiceServicer_to_server(_Traces(), server)
    mgrpc.add_MetricsServiceServicer_to_server(_Metrics(), server)
    lgrpc.add_LogsServiceServicer_to_server(_Logs(), server)
    grpc_port = server.add_insecure_port(f"127.0.0.1:{grpc_port}")
    server.start()
    httpd = ThreadingHTTPServer(("127.0.0.1", http_port), _Http)
    httpd.daemon_threads = True
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"otlp sink: grpc 127.0.0.1:{grpc_port} http 127.0.0.1:{httpd.server_port}", flush=True)
    try:
        httpd.serve_forever(poll_interval=0.2)
    finally:
        httpd.server_close()
        server.stop(0.2).wait(2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
