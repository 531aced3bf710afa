"""``cnnkit serve``: a trained run behind HTTP (FastAPI + uvicorn), with a page to try it.

Endpoints: ``POST /predict`` (one or several images as multipart field ``file``; top-k JSON),
``POST /explain`` (Grad-CAM overlay of one image), ``GET /health``, ``GET /model`` (metadata and
classes), ``/docs`` (OpenAPI), and the page at ``/``. Images of concurrent requests are
micro-batched (:mod:`cnnkit.deploy.batching`).

Safety: loopback only unless an API key (or ``insecure``) is given; request bodies, images per
request and pixels per image are bounded; the type is read from the bytes; each request has a time
limit; every bad request gets a 4xx JSON error; one log line per request.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._deps import require

log = logging.getLogger("cnnkit.serve")


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8000
    backend: str = "torch"  # or "onnx"
    max_batch: int = 32  # 1: micro-batching off
    max_wait_ms: float = 5.0
    api_key: str | None = None
    insecure: bool = False
    max_upload_bytes: int = 10 * 1024 * 1024
    max_pixels: int = 40_000_000
    max_images: int = 64
    timeout_s: float = 30.0
    device: str = "auto"
    threads: int | None = None  # CPU threads per network call (None: PyTorch's / onnxruntime's default)


def is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_bind(host: str, api_key: str | None, insecure: bool) -> None:
    """Refuse to listen beyond this machine without a key (or an explicit ``insecure``)."""
    if not is_loopback(host) and not api_key and not insecure:
        raise ConfigError(f"--host {host} would let other machines use the model without a key",
                          hint="pass --api-key KEY (clients send X-API-Key), or --insecure if the network is trusted")  # fmt: skip


def _error(status: int, message: str, hint: str = "") -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message, **({"hint": hint} if hint else {})}, status_code=status)


class _TooLarge(Exception):
    pass


class Guard:
    """ASGI middleware: body-size limit, request time limit, JSON errors for both, one log line per request."""

    def __init__(self, app: Any, max_bytes: int, timeout_s: float) -> None:
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        state = {"status": 0, "received": 0, "too_large": False, "body_done": False, "replaced": False}
        headers = dict(scope.get("headers") or [])

        async def reply(resp: Any) -> None:
            state["replaced"] = True
            await resp(scope, receive, send)
            state["status"] = resp.status_code

        async def limited_receive() -> dict:
            msg = await receive()
            if msg["type"] == "http.request":
                state["received"] += len(msg.get("body", b""))
                state["body_done"] = not msg.get("more_body", False)
                if state["received"] > self.max_bytes:
                    state["too_large"] = True
                    raise _TooLarge
            return msg

        async def guarded_send(msg: dict) -> None:
            if state["replaced"]:
                return  # our own error went out instead of the app's reply
            if msg["type"] == "http.response.start":
                if state["too_large"]:  # the framework turned the aborted upload into its own 400
                    await reply(self._too_large())
                    return
                state["status"] = msg["status"]
            await send(msg)

        try:
            length = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            length = 0
        try:
            if length > self.max_bytes:
                await reply(self._too_large())
            else:
                await asyncio.wait_for(self.app(scope, limited_receive, guarded_send), self.timeout_s)
        except _TooLarge:
            if not state["status"]:
                await reply(self._too_large())
        except asyncio.TimeoutError:
            if not state["status"]:
                if state["body_done"]:
                    await reply(
                        _error(
                            503, f"the prediction took longer than {self.timeout_s:g} s", "try again later"
                        )
                    )
                else:
                    await reply(
                        _error(408, f"the upload took longer than {self.timeout_s:g} s", "send it faster")
                    )
        finally:
            client = scope.get("client") or ("-", 0)
            ms = (time.perf_counter() - t0) * 1000
            log.info(
                '%s "%s %s" %s %.1f ms',
                client[0],
                scope.get("method"),
                scope.get("path"),
                state["status"] or "-",
                ms,
            )

    def _too_large(self) -> Any:
        return _error(413, f"the request is larger than this server's limit of {self.max_bytes / 2**20:g} MB",
                      "send smaller or fewer images")  # fmt: skip


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0 picks a free one); a busy port is a one-line error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({e.strerror or e})",
                          hint="choose another --port (0 picks a free one) or --host") from None  # fmt: skip
    sock.listen(128)
    return sock


def _server(app: Any) -> Any:
    uvicorn = require("uvicorn")
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_keep_alive=5, lifespan="on")
    return uvicorn.Server(config)


def _setup_logging() -> None:
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(run_dir: str | Path, cfg: ServeConfig) -> None:
    """Load the run and serve it until Ctrl-C (blocking)."""
    from ..engine.device import select_device
    from ..run import load_run

    check_bind(cfg.host, cfg.api_key, cfg.insecure)
    if cfg.threads:
        import torch

        torch.set_num_threads(cfg.threads)
    require("fastapi"), require("uvicorn"), require("python_multipart")
    run = load_run(run_dir, device=select_device(cfg.device) if cfg.backend == "torch" else "cpu")
    sock = bind(cfg.host, cfg.port)  # before the (slow) backend set-up: a busy port fails at once
    if cfg.backend == "onnx":
        print("exporting the run to ONNX for onnxruntime ...", file=sys.stderr)
    from .app import create_app

    app = create_app(run, cfg)
    _setup_logging()
    url = url_of(sock)
    batching = (
        f"micro-batching up to {cfg.max_batch} images, {cfg.max_wait_ms:g} ms"
        if cfg.max_batch > 1
        else "no micro-batching"
    )
    print(f"serving {run.path.name} ({run.meta.model}, {cfg.backend}; {batching}) on {url}/  (API docs: {url}/docs; "
          f"Ctrl-C stops)", file=sys.stderr, flush=True)  # fmt: skip
    _server(app).run(sockets=[sock])


class ServerThread:
    """A server on a free loopback port in a background thread (tests, benchmarks, notebooks)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = bind(host, port)
        self.url = url_of(self.sock)
        self.server = _server(app)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> ServerThread:
        _setup_logging()
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise RuntimeError("the server did not start within 30 s")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()
