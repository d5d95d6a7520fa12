"""How this project starts Debian's Chromium headless (tests, benchmarks): one place for the flags.

The flags keep Chromium off the network (these machines reach no Google host) and enable WebGPU,
which here is SwiftShader on the CPU (see shared/notes/platform.md).
"""

from __future__ import annotations

import os

CHROMIUM = os.environ.get("QWEN35WEB_CHROMIUM", "/usr/bin/chromium")
OFFLINE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CHROMIUM_FLAGS = [*OFFLINE_FLAGS, "--enable-unsafe-webgpu"]
