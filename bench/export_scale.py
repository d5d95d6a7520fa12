"""Export a random-weight model of a real Qwen3.5 shape and record time, peak RSS and parity.

    .venv/bin/python bench/export_scale.py bench/configs/qwen3_5-4b.json --dtypes fp32 q4 [--validate]

Writes bench/results/export-<name>.json. The checkpoint is drawn here, tensor by tensor, into bf16
shards like the published ones (devtools.random_streamed); nothing is downloaded. Each bundle is
deleted once measured (disk), unless --keep.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("bench.export_scale")


def build_checkpoint(config_path: Path, out_dir: Path, seed: int = 0) -> float:
    from devtools.random_streamed import write_streamed_checkpoint

    config = json.loads(config_path.read_text())
    config = config.get("text_config", config)
    config.pop("torch_dtype", None)
    start = time.perf_counter()
    write_streamed_checkpoint(out_dir, config, seed=seed)
    return time.perf_counter() - start


def timed_export(model_dir: Path, out_dir: Path, ops: str, dtype: str, validate: bool) -> dict:
    """Run the real CLI in a child process; peak RSS from that child's own rusage (wait4)."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "qwen35web",
                "export",
                str(model_dir),
                str(out_dir),
                "--ops",
                ops,
                "--dtype",
                dtype,
                "--force",
            ]
            + (["--validate"] if validate else []),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    seconds = time.perf_counter() - start
    result = {
        "ops": ops,
        "dtype": dtype,
        "validate": validate,
        "exit_code": proc.returncode,
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(usage.ru_maxrss / 1e6, 2),
        "stderr_tail": stderr[-500:],
    }
    validation = out_dir / "validation.json"
    if validation.is_file():
        report = json.loads(validation.read_text())
        result["validation"] = report["worst"]
        result["passed"] = report["passed"]
    manifest = out_dir / "manifest.json"
    if manifest.is_file():
        result["bundle_bytes"] = sum(f["size"] for f in json.loads(manifest.read_text())["files"].values())
    return result


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("--ops", nargs="+", default=["fused"])
    parser.add_argument("--dtypes", nargs="+", default=["fp32"])
    parser.add_argument("--validate", action="store_true", help="a second run of each with --validate")
    parser.add_argument("--keep", action="store_true", help="keep the bundles")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="export-scale-"))
    name = args.config.stem
    checkpoint = work / f"{name}-ckpt"
    runs: list[dict[str, Any]] = []
    results: dict[str, Any] = {"config": str(args.config), "runs": runs}
    if not (checkpoint / "config.json").exists():
        results["checkpoint_build_seconds"] = round(build_checkpoint(args.config, checkpoint), 1)
    for ops in args.ops:
        for dtype in args.dtypes:
            out = work / f"{name}-{ops}-{dtype}"
            for validate in (False, True) if args.validate else (False,):
                run = timed_export(checkpoint, out, ops, dtype, validate)
                data_files = sorted(out.glob("*.data*"))
                run["data_files"] = [p.name for p in data_files]
                run["largest_data_file_bytes"] = max((p.stat().st_size for p in data_files), default=0)
                log.info("%s", json.dumps(run))
                runs.append(run)
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)
    out = ROOT / "bench" / "results" / f"export-{name}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    log.info("wrote %s", out)


if __name__ == "__main__":
    main()
