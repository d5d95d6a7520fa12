"""`qwen35web site build SITE_DIR [--bundle NAME=DIR ...] [--wasm-bundle NAME=DIR ...] [--note NAME=TEXT ...]`
`qwen35web site serve SITE_DIR [--port 8000] [--host 127.0.0.1] [--no-isolation]`

Exit status 0 on success, 2 on bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from qwen35web.cli_support import OneLineParser
from qwen35web.web.build import BuildError, SiteSpec, build_site, parse_named
from qwen35web.web.serve import DEFAULT_HOST, DEFAULT_PORT, is_site, make_server, url_of


def build_parser(prog: str = "qwen35web site") -> argparse.ArgumentParser:
    parser = OneLineParser(prog=prog, description="Build and serve the Qwen3.5 browser page.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    build = commands.add_parser("build", help="assemble the static site")
    build.add_argument(
        "site_dir", type=Path, help="directory to write the site into (replaced if a build made it)"
    )
    build.add_argument(
        "--bundle",
        action="append",
        default=[],
        metavar="NAME=BUNDLE_DIR",
        help="a model bundle served as NAME (repeatable; the first is the default)",
    )
    build.add_argument(
        "--wasm-bundle",
        action="append",
        default=[],
        metavar="NAME=BUNDLE_DIR",
        help="model NAME's bundle for the wasm backend (e.g. its `--dtype q8 --logits last` export)",
    )
    build.add_argument(
        "--note",
        action="append",
        default=[],
        metavar="NAME=TEXT",
        help="a notice the page shows with model NAME (e.g. that its weights are random)",
    )
    serve = commands.add_parser("serve", help="serve a built site")
    serve.add_argument("site_dir", type=Path, help="a directory written by `qwen35web site build`")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to listen on [{DEFAULT_PORT}]")
    serve.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default: loopback only)")
    serve.add_argument(
        "--no-isolation",
        dest="isolated",
        action="store_false",
        help="leave out the COOP/COEP headers (sent by default: cross-origin isolation lets onnxruntime-web "
        "use threads); the site's service worker then adds them, as on a host that cannot send headers",
    )
    # Isolation used to be opt-in with --coop-coep; it is the default now, and the flag is kept as a no-op.
    serve.add_argument("--coop-coep", action="store_true", help=argparse.SUPPRESS)
    return parser


def _build(args: argparse.Namespace) -> int:
    bundles = [(name, Path(path)) for name, path in parse_named(args.bundle, "bundle")]
    notes = dict(parse_named(args.note, "note"))
    wasm = {name: Path(path) for name, path in parse_named(args.wasm_bundle, "wasm-bundle")}
    build_site(SiteSpec(args.site_dir, bundles, notes, wasm_bundles=wasm))
    print(
        f"built {args.site_dir} (models: {', '.join(name for name, _ in bundles)}; default {bundles[0][0]})"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    if not is_site(args.site_dir):
        raise BuildError(f"{args.site_dir} is not a built site (run `qwen35web site build` first)")
    try:
        server = make_server(args.site_dir, args.host, args.port, args.isolated)
    except OSError as err:
        raise BuildError(f"cannot listen on {args.host}:{args.port}: {err.strerror or err}") from None
    print(f"serving {args.site_dir} at {url_of(server)} (Ctrl+C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def main(argv: list[str] | None = None, prog: str = "qwen35web site") -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = build_parser(prog).parse_args(argv)
    try:
        return _build(args) if args.command == "build" else _serve(args)
    except BuildError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
