"""A tiny OpenAI-compatible model server for the wire cases the local server cannot
produce as an upstream: an answer nested deeper than orjson writes, an oversized answer.
It counts every call per prompt and the most calls ever in flight at once.

Example::

    with StubUpstream(latency=0.05) as up:
        ...  # point a server at up.url
        assert up.calls["question 1"] == 1
"""

from __future__ import annotations

import ssl
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

__all__ = ["StubUpstream"]

DEEP = 300  # levels: orjson reads up to 1024, writes up to 254


class StubUpstream:
    """Prompts starting with ``deep`` get an answer nested ``DEEP`` levels deep, ``huge``
    one of ``huge_bytes``; every other prompt is echoed."""

    def __init__(
        self, *, latency: float = 0.0, huge_bytes: int = 200_000, key: str | None = None,
        models: list[str] | None = None, tls: ssl.SSLContext | None = None,
    ) -> None:
        self.latency = latency
        self.key = key  # when set, a request without "Authorization: Bearer <key>" is 401
        self.models = models  # GET /v1/models lists these; None: that route is 404
        self.huge_bytes = huge_bytes
        self.calls: Counter[str] = Counter()
        self.bodies: list[bytes] = []  # every request body, as received
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, payload: Any) -> None:
                data = orjson.dumps(payload)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _refused(self) -> bool:
                if stub.key is None or self.headers.get("authorization") == f"Bearer {stub.key}":
                    return False
                self._reply(401, {"error": {"message": "Incorrect API key provided"}})
                return True

            def do_GET(self) -> None:
                if self._refused():
                    return
                if self.path != "/v1/models" or stub.models is None:
                    self._reply(404, {"error": {"message": f"no route {self.path}"}})
                    return
                self._reply(200, {"object": "list", "data": [
                    {"id": m, "object": "model"} for m in stub.models]})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers["content-length"]))
                if self._refused():
                    return
                if self.path != "/v1/chat/completions":
                    self._reply(404, {"error": {"message": f"no route {self.path}"}})
                    return
                body = orjson.loads(raw)
                if "messages" not in body:
                    self._reply(400, {"error": {"message": "messages is required"}})
                    return
                prompt = body["messages"][-1]["content"]
                with stub._lock:
                    stub.bodies.append(raw)
                    stub.calls[prompt] += 1
                    stub.in_flight += 1
                    stub.peak = max(stub.peak, stub.in_flight)
                try:
                    if stub.latency:
                        time.sleep(stub.latency)
                    data = orjson.dumps(stub.answer(body["model"], prompt))
                finally:
                    with stub._lock:
                        stub.in_flight -= 1
                if prompt.startswith("echo-key"):  # a careless upstream quoting the key back
                    said = self.headers.get("authorization", "")
                    data = orjson.dumps({"error": {"message": f"key refused: {said}",
                                                   "code": "invalid_api_key"}})
                    self.send_response(401)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if prompt.startswith("deep"):  # orjson cannot write it: build the text by hand
                    data = data[:-1] + b',"extra":' + b"[" * DEEP + b"]" * DEEP + b"}"
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        if tls is not None:  # https, with the certificate the context holds (for localhost)
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.url = f"https://localhost:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def answer(self, model: str, prompt: str) -> dict[str, Any]:
        content = "x" * self.huge_bytes if prompt.startswith("huge") else f"echo: {prompt}"
        return {
            "id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }

    def __enter__(self) -> StubUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
