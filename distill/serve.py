"""``distill serve``: a model behind HTTP, a thin Starlette layer over :meth:`distill.api.Model.predict`.

Routes: ``POST /predict`` ``{"texts": [...]}`` -> ``{"results": [{"text", "entities": [{"type",
"text", "start", "end", "confidence"}]}]}``; ``GET /health`` (with counts of requests and
batches; 503 if the batching task has stopped); ``GET /metadata`` (labels, runtime, device,
fingerprint, version).

Concurrent requests are micro-batched: the first request in opens a window of ``batch_window_ms``
milliseconds, and the texts of every request that arrives in it (up to ``max_batch`` texts) are
tagged as one batch on a worker thread, so the event loop keeps accepting requests meanwhile. A
body over ``max_body_bytes``, more than ``max_texts`` texts or a text over ``max_text_chars``
characters gets 413; malformed JSON or a wrong shape 400, with a message; an empty list an empty
answer. uvicorn finishes in-flight requests on SIGTERM before it stops.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from .artifacts import fingerprint
from .errors import DistillError
from .settings import DEVICE_PATTERN, Settings, setting
from .tagging import Runtime, json_line

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.applications import Starlette

    from .api import Model


BACKLOG = 2048
"""Connections the system queues before the server accepts them (uvicorn's default)."""


@dataclass(kw_only=True)
class ServeConfig(Settings):
    model: Path = setting(argument=True, exists=True, help="The model directory to serve.")
    host: str = setting("127.0.0.1", help="Address to bind: loopback unless you mean otherwise (0.0.0.0: every one).")
    port: int = setting(8080, min=0, max=65535, help="Port to listen on (0: any free one).")
    runtime: Runtime = setting(
        "onnx", help="How the model runs: onnx or onnx-int8 (students, no torch), torch, int8, bf16 (teachers)."
    )
    device: str = setting(
        "cpu", pattern=DEVICE_PATTERN, help="Where a torch runtime computes: cpu, cuda, cuda:N or auto (onnx: CPU)."
    )
    threads: int = setting(0, min=0, help="CPU threads of the model's runtime (0: one per core).")
    batch_window_ms: float = setting(
        2.0, min=0, help="How long the first request of a batch waits for others to join it (0: no micro-batching)."
    )
    max_batch: int = setting(
        32,
        min=1,
        help="Texts tagged at most in one batch: a full batch is tagged at once, without waiting out the window.",
    )
    max_texts: int = setting(256, min=1, help="Texts one request may hold (more: 413).")
    max_text_chars: int = setting(10_000, min=1, help="Characters one text may hold (more: 413).")
    max_body_bytes: int = setting(1_000_000, min=1, help="Bytes one request body may hold (more: 413).")


class RequestError(Exception):
    """A request the server refuses: its status code and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def parse_request(body: bytes, cfg: ServeConfig) -> list[str]:
    """The texts of a /predict body, or :class:`RequestError` saying what is wrong with it."""
    if len(body) > cfg.max_body_bytes:
        raise RequestError(413, f"the body has {len(body)} bytes; at most {cfg.max_body_bytes} are accepted")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise RequestError(400, f"the body is not JSON: {err}") from None
    texts = payload.get("texts") if isinstance(payload, dict) else None
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise RequestError(400, 'expected a JSON object {"texts": ["a text", ...]}: a list of strings under "texts"')
    if len(texts) > cfg.max_texts:
        raise RequestError(413, f"{len(texts)} texts; at most {cfg.max_texts} are accepted in one request")
    longest = max(map(len, texts), default=0)
    if longest > cfg.max_text_chars:
        raise RequestError(413, f"a text of {longest} characters; at most {cfg.max_text_chars} are accepted")
    return texts


@dataclass
class MicroBatcher:
    """Collects the texts of concurrent requests for ``window`` seconds (or ``max_batch`` texts) and
    tags them as one batch with ``predict`` on a worker thread; requests that queued while a batch
    was tagged join the next at once. ``window`` 0: each request is tagged alone, in turn."""

    predict: object
    """texts -> entities per text (a blocking call)."""
    window: float
    max_batch: int
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    requests: int = 0
    batches: int = 0
    largest_batch: int = 0
    """Requests in the largest batch so far."""

    async def submit(self, texts: list[str]) -> list:
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((texts, future))
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            size = len(batch[0][0])
            deadline = loop.time() + self.window
            while self.window > 0 and size < self.max_batch:  # window 0: each request is tagged alone
                left = deadline - loop.time()
                if left <= 0 and self.queue.empty():
                    break
                try:
                    item = (
                        await asyncio.wait_for(self.queue.get(), max(left, 0)) if left > 0 else self.queue.get_nowait()
                    )
                except (asyncio.TimeoutError, asyncio.QueueEmpty):  # not the builtin TimeoutError before 3.11
                    break
                batch.append(item)
                size += len(item[0])
            texts = [text for request, _ in batch for text in request]
            try:
                entities = await loop.run_in_executor(None, self.predict, texts)
            except Exception as err:  # every waiting request learns of it; the server goes on
                for _, future in batch:
                    if not future.done():
                        future.set_exception(err)
                continue
            self.requests, self.batches = self.requests + len(batch), self.batches + 1
            self.largest_batch = max(self.largest_batch, len(batch))
            at = 0
            for request, future in batch:
                if not future.done():  # a request cancelled while it waited (its client gone) wants nothing
                    future.set_result(entities[at : at + len(request)])
                at += len(request)


def create_app(model: Model, cfg: ServeConfig) -> Starlette:
    """The ASGI app serving ``model`` (a :class:`distill.api.Model`)."""
    import contextlib

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse as StarletteJSON
    from starlette.routing import Route

    class JSONResponse(StarletteJSON):
        def render(self, content: object) -> bytes:
            return json_line(content).encode("utf-8")

    batcher: MicroBatcher | None = None
    batching: asyncio.Task | None = None
    metadata = {
        "model": str(cfg.model),
        "kind": model.kind,
        "labels": model.labels,
        "runtime": cfg.runtime,
        "device": cfg.device,
        "fingerprint": fingerprint(model.config),
        "version": __version__,
    }

    def stopped() -> JSONResponse | None:
        """503, naming the error, once the batching task has stopped: no request would be answered."""
        if batching is None or not batching.done():
            return None
        error = None if batching.cancelled() else batching.exception()
        return JSONResponse({"status": "error", "error": f"the batching task stopped: {error!r}"}, 503)

    async def predict(request: Request) -> JSONResponse:
        if down := stopped():
            return down
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cfg.max_body_bytes:
            return JSONResponse({"error": f"the body has {declared} bytes; at most {cfg.max_body_bytes}"}, 413)
        try:
            texts = parse_request(await request.body(), cfg)
        except RequestError as err:
            return JSONResponse({"error": str(err)}, err.status)
        entities = await batcher.submit(texts) if texts else []
        results = [{"text": t, "entities": [e.as_dict() for e in row]} for t, row in zip(texts, entities)]
        return JSONResponse({"results": results})

    async def health(request: Request) -> JSONResponse:
        if down := stopped():
            return down
        counts = {"requests": batcher.requests, "batches": batcher.batches, "largest_batch": batcher.largest_batch}
        return JSONResponse({"status": "ok", **counts})

    async def describe(request: Request) -> JSONResponse:
        return JSONResponse(metadata)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal batcher, batching
        batcher = MicroBatcher(model.predict, cfg.batch_window_ms / 1000, cfg.max_batch)
        batching = asyncio.create_task(batcher.run())
        yield
        batching.cancel()

    routes = [
        Route("/predict", predict, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/metadata", describe, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def serve(cfg: ServeConfig) -> None:
    """Bind the port, load the model, say where it is served (on stderr), and serve until SIGTERM
    or Ctrl-C (in-flight requests finish first)."""
    import uvicorn

    from .api import load_model

    listening = _listen(cfg.host, cfg.port)  # first: a port in use fails before the model loads
    model = load_model(cfg.model, cfg.device, cfg.runtime, threads=cfg.threads)
    model.predict(["热身"])  # the first call loads lazily held parts: before the first request, not in it
    listening.listen(BACKLOG)  # from here a connection waits for the server, none is refused
    host = f"[{cfg.host}]" if ":" in cfg.host else cfg.host
    port = listening.getsockname()[1]  # the one the system chose, for --port 0
    print(f"serving {cfg.model} ({cfg.runtime}) on http://{host}:{port}", file=sys.stderr, flush=True)
    config = uvicorn.Config(create_app(model, cfg), backlog=BACKLOG, log_level="warning", access_log=False)
    uvicorn.Server(config).run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (IPv6 for a host with a colon), or an error saying why not."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listening.bind((host, port))
    except OSError as err:
        listening.close()
        raise DistillError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return listening
