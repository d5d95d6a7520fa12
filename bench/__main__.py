"""Run any bench by name: `python -m bench NAME [args]`; `python -m bench --list` names them all.

  python -m bench peers --web-0.8b        # what `make bench` runs
  python -m bench threads --models tiny   # the same as python -m bench.threads --models tiny

The names come from bench/registry.py. Each bench keeps its own arguments (`python -m bench NAME --help`).
"""

from __future__ import annotations

import importlib
import sys

from bench.registry import BENCHES


def listing() -> str:
    width = max(len(name) for name in BENCHES)
    lines = ["benches (python -m bench NAME [args], or python -m bench.NAME [args]):"]
    lines += [f"  {bench.name:<{width}}  {bench.summary}" for bench in BENCHES.values()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("--list", "-l", "--help", "-h"):
        print(listing())
        return 0
    name, rest = args[0], args[1:]
    bench = BENCHES.get(name)
    if bench is None:
        print(f"error: no bench named {name!r} (python -m bench --list names them)", file=sys.stderr)
        return 2
    module = importlib.import_module(bench.module)
    # Each bench parses sys.argv as when run as `python -m bench.NAME`.
    sys.argv = [f"python -m bench.{name}", *rest]
    result = module.main()
    return int(result or 0)


if __name__ == "__main__":
    raise SystemExit(main())
