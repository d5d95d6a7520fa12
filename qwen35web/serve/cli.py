"""`qwen35web serve BUNDLE [--host 127.0.0.1] [--port 8080] [--model-name NAME] ...`: an OpenAI-compatible
local server for one bundle (`POST /v1/chat/completions`, `GET /v1/models`).

It prints one line once it listens (`listening on http://HOST:PORT/v1 ...`; with `--port 0` the port
the system chose), logs one line per request on stderr, and stops cleanly on Ctrl+C (or SIGTERM):
generations in flight are cancelled, the model is closed, exit status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from qwen35web.cli_support import OneLineParser
from qwen35web.runtime.errors import RuntimeUserError
from qwen35web.runtime.loaded_model import Runtime
from qwen35web.runtime.native.generate_cli import add_kept_states_argument
from qwen35web.runtime.openai_api.completion import DEFAULT_MAX_TOKENS
from qwen35web.serve.worker import ModelWorker

log = logging.getLogger("qwen35web.serve")


def build_parser(prog: str = "qwen35web serve") -> argparse.ArgumentParser:
    serve = OneLineParser(prog=prog, description="Serve a bundle with an OpenAI-compatible HTTP API.")
    add = serve.add_argument
    add("bundle", type=Path, help="a bundle directory written by `qwen35web export`")
    add("--host", default="127.0.0.1", help="address to listen on [127.0.0.1: this machine only]")
    add("--port", type=int, default=8080, help="port to listen on; 0 picks a free one (printed) [8080]")
    add("--model-name", default=None, help="the model id clients send [the bundle directory's name]")
    add(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        help=f"reply length when a request sets no max_tokens [{DEFAULT_MAX_TOKENS}]",
    )
    add("--max-context", type=int, default=None, help="tokens a request may hold [the bundle's context]")
    add_kept_states_argument(serve)
    add("--prefill-chunk", type=int, default=256, help="prompt tokens per graph call [256]")
    add("--threads", type=int, default=None, help="onnxruntime intra-op threads [onnxruntime's choice]")
    return serve


def _check(args: argparse.Namespace) -> None:
    if not 0 <= args.port <= 65535:
        raise RuntimeUserError(f"--port must be 0..65535, got {args.port}")
    if args.max_tokens < 1:
        raise RuntimeUserError(f"--max-tokens must be at least 1, got {args.max_tokens}")
    if args.max_context is not None and args.max_context < 2:
        raise RuntimeUserError(f"--max-context must be at least 2 tokens, got {args.max_context}")
    if args.kept_states_mb < 0:
        raise RuntimeUserError(f"--kept-states-mb must be >= 0, got {args.kept_states_mb}")


def _open(worker: ModelWorker, args: argparse.Namespace) -> Runtime:
    from qwen35web.runtime.native.open_bundle import open_native

    return worker.call(
        lambda: open_native(
            args.bundle,
            threads=args.threads,
            prefill_chunk=args.prefill_chunk,
            kept_states_budget=int(args.kept_states_mb * 2**20),
            max_context=args.max_context,
        )
    )


async def _serve(args: argparse.Namespace, worker: ModelWorker, runtime: Runtime) -> None:
    from qwen35web.serve.app import ChatServer

    model_id = args.model_name or args.bundle.resolve().name
    app = ChatServer(worker, runtime, model_id, args.max_tokens)
    try:
        server = await asyncio.start_server(app.handle, args.host, args.port)
    except OSError as err:
        raise RuntimeUserError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from None
    host, port = server.sockets[0].getsockname()[:2]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    sys.stdout.write(f"listening on http://{host}:{port}/v1 (model {model_id!r}; Ctrl+C stops)\n")
    sys.stdout.flush()
    async with server:
        await stop.wait()
        log.info("stopping: cancelling the generations in flight")
        app.cancel_all()
        server.close()


def _run(args: argparse.Namespace) -> int:
    _check(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    worker = ModelWorker()
    try:
        runtime = _open(worker, args)
        try:
            asyncio.run(_serve(args, worker, runtime))
        finally:
            worker.call(runtime.close)
    finally:
        worker.shutdown()
    sys.stderr.write("stopped\n")
    return 0


def main(argv: list[str] | None = None, prog: str = "qwen35web serve") -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        return _run(args)
    except RuntimeUserError as err:
        sys.stderr.write(f"error: {err}\n")
        return err.exit_code
    except KeyboardInterrupt:  # Ctrl+C while the bundle loads
        sys.stderr.write("\ninterrupted\n")
        return 130
