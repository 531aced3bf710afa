"""``cnnkit serve``: a real server on a free loopback port, a real HTTP client (httpx)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import time

import httpx
import numpy as np
import pytest

from cnnkit.cli import main
from cnnkit.deploy.app import create_app
from cnnkit.deploy.backends import TorchBackend
from cnnkit.deploy.server import ServeConfig, ServerThread, check_bind
from cnnkit.errors import ConfigError
from cnnkit.run import load_run


def png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


LIMITS = dict(max_upload_bytes=300_000, max_pixels=1_000_000, max_images=4)


@pytest.fixture(scope="module")
def server(lenet_run):
    """The LeNet-5 run served with small limits; micro-batching waits up to 30 ms for company."""
    cfg = ServeConfig(max_batch=32, max_wait_ms=30, **LIMITS)
    app = create_app(load_run(lenet_run), cfg)
    with ServerThread(app) as s:
        s.app = app
        yield s


def post(url, *files, field="file", **kw):
    return httpx.post(url + "/predict", files=[(field, f) for f in files], timeout=30, **kw)


def assert_alive(server, digit_files):
    assert httpx.get(server.url + "/health", timeout=10).json()["status"] == "ok"
    r = post(server.url, ("d.png", digit_files[0].read_bytes(), "image/png"))
    assert r.status_code == 200 and r.json()["predictions"][0]["top"]


def test_predictions_equal_cnnkit_predict(server, lenet_run, digit_files, capsys):
    assert (
        main(["predict", str(lenet_run), *map(str, digit_files), "--json", "--topk", "3", "--device", "cpu"])
        == 0
    )
    cli = json.loads(capsys.readouterr().out)
    r = post(server.url, *[(f.name, f.read_bytes(), "image/png") for f in digit_files], params={"topk": 3})
    assert r.status_code == 200
    got = r.json()["predictions"]
    assert [p["name"] for p in got] == [f.name for f in digit_files]
    for g, c in zip(got, cli, strict=True):
        assert [t["class"] for t in g["top"]] == [t["class"] for t in c["top"]]
        assert np.allclose([t["prob"] for t in g["top"]], [t["prob"] for t in c["top"]], atol=2e-6)


def test_model_health_docs_and_page(server):
    m = httpx.get(server.url + "/model", timeout=10).json()
    assert m["classes"] == [str(i) for i in range(10)] and m["input_size"] == [1, 32, 32] and m["drawable"]
    assert "/predict" in httpx.get(server.url + "/openapi.json", timeout=10).json()["paths"]
    assert httpx.get(server.url + "/docs", timeout=10).status_code == 200
    page = httpx.get(server.url + "/", timeout=10)
    assert page.status_code == 200 and 'id="file"' in page.text
    for asset in ("app.js", "style.css"):
        body = httpx.get(f"{server.url}/static/{asset}", timeout=10)
        assert body.status_code == 200
        assert "https://" not in body.text and "http://" not in body.text  # offline: no CDN
    assert "https://" not in page.text and "http://" not in page.text


@pytest.mark.parametrize(
    ("what", "files", "field", "status"),
    [
        ("oversized", [("big.png", b"\x89PNG" + b"0" * 400_000, "image/png")], "file", 413),
        ("truncated", None, "file", 400),
        ("not an image", [("x.png", b"hello, I am text", "image/png")], "file", 415),
        ("empty", [("e.png", b"", "image/png")], "file", 400),
        ("wrong field", None, "image", 422),
        (
            "too many pixels",
            [("huge.png", png_bytes(np.zeros((1200, 1200), np.uint8)), "image/png")],
            "file",
            413,
        ),
        ("too many images", None, "file", 413),
    ],
)
def test_bad_uploads_get_4xx_json_and_the_server_keeps_serving(
    server, digit_files, what, files, field, status
):
    good = digit_files[0].read_bytes()
    if what == "truncated":
        files = [("t.png", good[: len(good) // 2], "image/png")]
    elif what == "wrong field":
        files = [("d.png", good, "image/png")]
    elif what == "too many images":
        files = [(f"{i}.png", good, "image/png") for i in range(5)]
    r = post(server.url, *files, field=field)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] and "Traceback" not in r.text
    assert_alive(server, digit_files)


def test_not_multipart_and_text_field_are_4xx(server, digit_files):
    r = httpx.post(
        server.url + "/predict", content=b"raw bytes", headers={"content-type": "image/png"}, timeout=10
    )
    assert r.status_code == 422 and "multipart" in r.json()["error"]
    r = httpx.post(server.url + "/predict", data={"file": "hello"}, timeout=10)
    assert 400 <= r.status_code < 500
    r = httpx.post(
        server.url + "/predict?topk=0", files=[("file", ("d.png", digit_files[0].read_bytes()))], timeout=10
    )
    assert r.status_code == 422 and "topk" in r.json()["error"]
    assert_alive(server, digit_files)


def test_concurrent_requests_are_micro_batched(server, digit_files):
    data = digit_files[1].read_bytes()
    before = server.app.state.batcher.stats
    b0, i0 = before.batches, before.images

    async def burst():
        async with httpx.AsyncClient(timeout=30) as c:
            rs = await asyncio.gather(*[c.post(server.url + "/predict", files=[("file", ("d.png", data))])
                                        for _ in range(12)])  # fmt: skip
        return rs

    rs = asyncio.run(burst())
    assert all(r.status_code == 200 for r in rs)
    assert (
        len({json.dumps(r.json()["predictions"]) for r in rs}) == 1
    )  # batch company does not change answers
    s = server.app.state.batcher.stats
    assert s.images - i0 == 12 and s.batches - b0 < 12  # some requests shared a network call


def test_one_log_line_per_request(server, digit_files):
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda rec: lines.append(rec.getMessage())  # type: ignore[method-assign]
    logging.getLogger("cnnkit.serve").addHandler(handler)
    try:
        httpx.get(server.url + "/health", timeout=10)
        post(server.url, ("x.png", b"nope", "image/png"))
        time.sleep(0.2)
    finally:
        logging.getLogger("cnnkit.serve").removeHandler(handler)
    assert len(lines) == 2
    assert '"GET /health" 200' in lines[0] and '"POST /predict" 415' in lines[1] and " ms" in lines[1]


def test_explain_returns_a_gradcam_png(server, digit_files):
    from PIL import Image

    r = httpx.post(
        server.url + "/explain", files=[("file", ("d.png", digit_files[0].read_bytes()))], timeout=60
    )
    assert r.status_code == 200
    body = r.json()
    head, data = body["overlay"].split(",", 1)
    assert head == "data:image/png;base64" and body["class"] in [str(i) for i in range(10)]
    im = Image.open(io.BytesIO(base64.b64decode(data)))
    assert im.size[0] >= 224 and im.mode == "RGB"


def test_api_key_is_required_when_set(lenet_run, digit_files):
    cfg = ServeConfig(api_key="s3cret", max_batch=1)
    with ServerThread(create_app(load_run(lenet_run), cfg)) as s:
        f = ("d.png", digit_files[0].read_bytes(), "image/png")
        assert post(s.url, f).status_code == 401
        assert post(s.url, f, headers={"X-API-Key": "wrong"}).status_code == 401
        assert post(s.url, f, headers={"X-API-Key": "s3cret"}).status_code == 200
        assert post(s.url, f, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(s.url + "/model", timeout=10).status_code == 401
        assert httpx.get(s.url + "/health", timeout=10).json()["auth"] is True


def test_a_slow_prediction_times_out_with_a_json_error(lenet_run, digit_files):
    run = load_run(lenet_run)

    class Slow(TorchBackend):
        def predict(self, images, k):
            time.sleep(1.5)
            return super().predict(images, k)

    with ServerThread(create_app(run, ServeConfig(timeout_s=0.5, max_batch=1), backend=Slow(run))) as s:
        r = post(s.url, ("d.png", digit_files[0].read_bytes(), "image/png"))
        assert r.status_code == 503 and "longer than 0.5 s" in r.json()["error"]
        assert httpx.get(s.url + "/health", timeout=10).status_code == 200


def test_non_loopback_bind_needs_a_key(lenet_run, capsys):
    check_bind("127.0.0.1", None, False)
    check_bind("::1", None, False)
    check_bind("localhost", None, False)
    check_bind("0.0.0.0", "key", False)
    check_bind("0.0.0.0", None, True)
    for host in ("0.0.0.0", "192.168.1.20", "example.org"):
        with pytest.raises(ConfigError, match="without a key"):
            check_bind(host, None, False)
    assert main(["serve", str(lenet_run), "--host", "0.0.0.0"]) == 2  # refused before anything starts
    err = capsys.readouterr().err
    assert "--api-key" in err and "Traceback" not in err and len(err.strip().splitlines()) == 2


def test_a_busy_port_is_a_one_line_error(lenet_run, capsys):
    from cnnkit.deploy.server import bind

    sock = bind("127.0.0.1", 0)
    try:
        port = sock.getsockname()[1]
        assert main(["serve", str(lenet_run), "--port", str(port)]) == 2
        assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    finally:
        sock.close()


@pytest.mark.slow
def test_onnx_backend_answers_like_torch(server, lenet_run, digit_files):
    cfg = ServeConfig(backend="onnx", max_batch=8)
    with ServerThread(create_app(load_run(lenet_run), cfg)) as s:
        files = [(f.name, f.read_bytes(), "image/png") for f in digit_files]
        onnx = post(s.url, *files).json()["predictions"]
        torch_ = post(server.url, *files).json()["predictions"]
        assert httpx.get(s.url + "/health", timeout=10).json()["backend"] == "onnx"
    for a, b in zip(onnx, torch_, strict=True):
        assert a["top"][0]["class"] == b["top"][0]["class"]
        assert np.allclose([t["prob"] for t in a["top"]], [t["prob"] for t in b["top"]], atol=1e-5)
