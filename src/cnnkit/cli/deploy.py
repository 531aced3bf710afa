"""``cnnkit export`` (ONNX / TorchScript, verified) and ``cnnkit serve`` (HTTP service with a page)."""

from __future__ import annotations

import argparse

from ._args import add_device, float_in, int_in


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a run to ONNX or TorchScript, verified on its test split",
                       description="Write the run's best weights as one file another runtime can load. The graph "
                       "takes uint8 images N x C x H x W (0-255) at the run's input size (normalisation is inside) "
                       "and returns logits; class names, mean/std, input size and the cnnkit version are stored "
                       "in the file's metadata.")  # fmt: skip
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--format", dest="fmt", choices=("onnx", "torchscript"), default="onnx",
                   help="onnx (checked with onnxruntime) or torchscript (checked with torch.jit); default onnx")  # fmt: skip
    p.add_argument("-o", "--output", default=None,
                   help="file to write (default RUN_DIR/export/model.onnx or model.pt, -int8-MODE when quantized)")  # fmt: skip
    p.add_argument("--dynamic-batch", action="store_true",
                   help="ONNX: any batch size (default: a graph for one image at a time); TorchScript always is")  # fmt: skip
    p.add_argument("--opset", metavar="N", type=int_in(13, 23), default=None, help="ONNX opset (default 18)")
    p.add_argument("--quantize", choices=("dynamic", "static"), default=None,
                   help="int8: dynamic (weights) or static (weights and activations, calibrated on training "
                   "images); reports the accuracy change on the test split")  # fmt: skip
    p.add_argument(
        "--no-verify", action="store_true", help="skip the comparison with PyTorch on the test split"
    )
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing file that is not a cnnkit export (exports are always replaced)")  # fmt: skip
    p.set_defaults(func=run_export)

    s = sub.add_parser("serve", help="serve a run over HTTP: /predict, /health, /model, and a page at /",
                       description="Start an HTTP service (FastAPI + uvicorn) for a trained run. Loopback only "
                       "unless --api-key (or --insecure) is given. Open http://HOST:PORT/ for the page, "
                       "/docs for the API.")  # fmt: skip
    s.add_argument("run_dir", metavar="RUN_DIR")
    s.add_argument(
        "--host",
        metavar="HOST",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1, this machine only)",
    )
    s.add_argument("--port", metavar="PORT", type=int_in(0, 65535), default=8000,
                   help="port (default 8000; 0 picks a free one)")  # fmt: skip
    s.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                   help="torch (the run's PyTorch model) or onnx (an onnxruntime export made at start-up)")  # fmt: skip
    s.add_argument("--max-batch", metavar="N", type=int_in(1, 4096), default=32,
                   help="most images run together from concurrent requests (1 turns micro-batching off; default 32)")  # fmt: skip
    s.add_argument("--max-wait-ms", metavar="MS", type=float_in(0, 1000), default=5.0,
                   help="how long the first waiting image waits for others to join its batch (default 5)")  # fmt: skip
    s.add_argument("--api-key", metavar="KEY", default=None,
                   help="require this key (header X-API-Key or 'Authorization: Bearer KEY'); env CNNKIT_API_KEY")  # fmt: skip
    s.add_argument("--insecure", action="store_true", help="allow a non-loopback --host without --api-key")
    s.add_argument("--max-upload-mb", metavar="MB", type=float_in(0, 1024, lo_open=True), default=10.0,
                   help="largest accepted request body in MB (default 10)")  # fmt: skip
    s.add_argument("--max-pixels", metavar="N", type=int_in(1, 1_000_000_000), default=40_000_000,
                   help="largest accepted image in pixels, checked from the header before decoding (default 40M)")  # fmt: skip
    s.add_argument("--max-images", metavar="N", type=int_in(1, 1024), default=64,
                   help="most images in one request (default 64)")  # fmt: skip
    s.add_argument("--timeout", metavar="SECONDS", type=float_in(0, 3600, lo_open=True), default=30.0,
                   help="seconds a request may take, upload and prediction together (default 30)")  # fmt: skip
    s.add_argument("--threads", metavar="N", type=int_in(1, 1024), default=None,
                   help="CPU threads per network call (default: one per core); 1 suits small models on a "
                   "busy machine")  # fmt: skip
    add_device(s)
    s.set_defaults(func=run_serve)


def run_export(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from ..deploy import export_run

    console = Console(stderr=True)
    # A spinner while the exporter and the check run (tens of seconds); nothing when output is not a terminal.
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                  transient=True, disable=not console.is_terminal) as prog:  # fmt: skip
        prog.add_task(f"exporting {args.run_dir} to {args.fmt} and checking it on the test split", total=None)
        r = export_run(args.run_dir, args.fmt, args.output, dynamic_batch=args.dynamic_batch, opset=args.opset,
                       quantize=args.quantize, verify=not args.no_verify, overwrite=args.overwrite)  # fmt: skip
    m = r.meta
    c, h, w = m["input_size"]
    batch = "any batch size" if m["dynamic_batch"] else "one image per call"
    print(f"wrote {r.path} ({r.format}, {r.size_bytes / 1e6:.2f} MB): input uint8 {c}x{h}x{w} (0-255), {batch}; "
          f"output logits for {len(m['classes'])} classes")  # fmt: skip
    for note in r.notes:
        print(f"quantized: {note}")
    if r.n:
        print(f"checked on {r.n} test images against PyTorch: max abs diff {r.max_abs_diff:.2e}, "
              f"top-1 agreement {r.agreement:.2%}")  # fmt: skip
        change = (r.acc_export - r.acc_torch) * 100
        print(f"test accuracy: PyTorch {r.acc_torch:.2%}, export {r.acc_export:.2%} ({change:+.2f} points)")
    elif not args.no_verify:
        print("not checked: the run has no test images")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    import os

    from ..deploy.server import ServeConfig, serve

    cfg = ServeConfig(host=args.host, port=args.port, backend=args.backend, max_batch=args.max_batch,
                      max_wait_ms=args.max_wait_ms, api_key=args.api_key or os.environ.get("CNNKIT_API_KEY") or None,
                      insecure=args.insecure, max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
                      max_pixels=args.max_pixels, max_images=args.max_images, timeout_s=args.timeout,
                      device=args.device, threads=args.threads)  # fmt: skip
    serve(args.run_dir, cfg)
    return 0
