"""A small OpenAI-compatible chat-completions server on 127.0.0.1, for end-to-end tests.

It serves only `POST /v1/chat/completions` (non-streaming).  Each request sleeps
`latency` seconds, like a slow model, then answers with deterministic text built
from the request: `f"[{model}] "` followed by the last user message reversed.
The server counts its requests and records each request's model and messages,
thread-safely, so tests can check that exactly the expected calls were made.

    with FakeOpenAIServer(latency=0.1) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test", max_retries=0)
        ...
        server.requests  # [(model, messages), ...] in arrival order

Like a real provider, it can refuse work: with `max_in_flight=n` a request
that arrives while n others are being answered gets HTTP 429 at once (counted
in `rejected`, not in `requests`), and a request whose last user message
contains `fail_on` gets HTTP 400.  `peak` is the most requests it answered at
once, `arrivals` the `time.monotonic()` of every request that reached it.

It binds an ephemeral port on 127.0.0.1 only and answers only the requests
the tests send it; `close()` (or leaving the `with` block) stops it.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"


def reply_for(model: str, messages: list[dict[str, Any]]) -> str:
    """The deterministic reply the server gives: the model's tag and the last user message reversed."""
    last = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    if not isinstance(last, str):  # content parts: join their text
        last = "".join(part.get("text", "") for part in last or () if isinstance(part, dict))
    return f"[{model}] {last[::-1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"  # keep-alive, as the openai client's connection pool expects
    # Headers and body go out as separate small writes: without TCP_NODELAY, Nagle's algorithm
    # and the client's delayed ACK would add ~40 ms to every response.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # noqa: N802 - the name http.server dispatches to
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        try:
            body = json.loads(raw)
            model = body["model"]
            messages = body["messages"]
            if not isinstance(model, str) or not isinstance(messages, list):
                raise TypeError("model must be a string and messages a list")
        except (ValueError, KeyError, TypeError) as exc:
            self._send(400, {"error": {"message": f"bad request: {exc}", "type": "invalid_request_error"}})
            return
        if body.get("stream"):
            self._send(
                400, {"error": {"message": "streaming is not supported", "type": "invalid_request_error"}}
            )
            return
        if not self.server.admit():
            self._send(429, {"error": {"message": "too many requests in flight", "type": "rate_limit"}})
            return
        try:  # (the request leaves the count before its answer is sent: the client may send the next)
            last = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
            fail_on = self.server.fail_on
            if fail_on is not None and fail_on in str(last):
                status = 400
                payload = {"error": {"message": f"refused: {fail_on}", "type": "invalid_request_error"}}
            else:
                self.server.record(model, messages)
                time.sleep(self.server.latency)
                status, payload = 200, self._answer(model, messages)
        finally:
            self.server.leave()
        self._send(status, payload)

    def _answer(self, model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        content = reply_for(model, messages)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(content.split())
        return {
            "id": f"chatcmpl-{self.server.next_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                    "logprobs": None,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def do_GET(self) -> None:  # noqa: N802
        self._send(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # keep test output clean


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = True  # server_close() joins the handler threads

    def __init__(self, latency: float, max_in_flight: int | None, fail_on: str | None) -> None:
        super().__init__((HOST, 0), _Handler)
        self.latency = latency
        self.max_in_flight = max_in_flight
        self.fail_on = fail_on
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.log: list[tuple[str, list[dict[str, Any]]]] = []
        self.arrivals: list[float] = []
        self.in_flight = 0
        self.peak = 0
        self.rejected = 0

    def admit(self) -> bool:
        """A request arrives: False (429) when `max_in_flight` others are being answered."""
        with self._lock:
            self.arrivals.append(time.monotonic())
            if self.max_in_flight is not None and self.in_flight >= self.max_in_flight:
                self.rejected += 1
                return False
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            return True

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def record(self, model: str, messages: list[dict[str, Any]]) -> None:
        with self._lock:
            self.log.append((model, messages))

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)


class FakeOpenAIServer:
    """A threaded OpenAI-compatible server on 127.0.0.1 with a fixed latency per request."""

    def __init__(
        self, latency: float = 0.1, *, max_in_flight: int | None = None, fail_on: str | None = None
    ) -> None:
        self._server = _Server(latency, max_in_flight, fail_on)
        self.port: int = self._server.server_address[1]
        self.base_url = f"http://{HOST}:{self.port}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-openai", daemon=True
        )
        self._thread.start()

    @property
    def latency(self) -> float:
        return self._server.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self._server.latency = value

    @property
    def requests(self) -> list[tuple[str, list[dict[str, Any]]]]:
        """(model, messages) of every request so far, in arrival order (a copy)."""
        with self._server._lock:
            return list(self._server.log)

    @property
    def peak(self) -> int:
        """The most requests answered at once (a refused one is not answered)."""
        with self._server._lock:
            return self._server.peak

    @property
    def rejected(self) -> int:
        """Requests refused with 429 (`max_in_flight`)."""
        with self._server._lock:
            return self._server.rejected

    @property
    def arrivals(self) -> list[float]:
        """`time.monotonic()` of every request that reached the server, refused ones too (a copy)."""
        with self._server._lock:
            return list(self._server.arrivals)

    @property
    def count(self) -> int:
        with self._server._lock:
            return len(self._server.log)

    def prompts(self, start: int = 0) -> Counter[tuple[str, str]]:
        """The multiset of (model, last user message) of the requests from index `start` on."""
        return Counter(
            (model, next((m["content"] for m in reversed(msgs) if m.get("role") == "user"), ""))
            for model, msgs in self.requests[start:]
        )

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAIServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
