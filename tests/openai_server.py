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
        self.server.record(model, messages)
        time.sleep(self.server.latency)
        content = reply_for(model, messages)
        prompt_tokens = sum(len(str(m.get("content", "")).split()) for m in messages)
        completion_tokens = len(content.split())
        self._send(
            200,
            {
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
            },
        )

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

    def __init__(self, latency: float) -> None:
        super().__init__((HOST, 0), _Handler)
        self.latency = latency
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.log: list[tuple[str, list[dict[str, Any]]]] = []

    def record(self, model: str, messages: list[dict[str, Any]]) -> None:
        with self._lock:
            self.log.append((model, messages))

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)


class FakeOpenAIServer:
    """A threaded OpenAI-compatible server on 127.0.0.1 with a fixed latency per request."""

    def __init__(self, latency: float = 0.1) -> None:
        self._server = _Server(latency)
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
