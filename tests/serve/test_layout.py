"""The mapping ships to the page (stdlib only); the HTTP server stays native."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from qwen35web.web.build import write_runtime_archive


def test_the_openai_mapping_is_in_the_pyodide_archive_and_the_server_is_not(tmp_path: Path) -> None:
    archive = tmp_path / "runtime.zip"
    write_runtime_archive(archive)
    names = zipfile.ZipFile(archive).namelist()
    assert "qwen35web/runtime/openai_api/completion.py" in names
    assert not any(name.startswith("qwen35web/serve/") for name in names)
    # -S -I: no site-packages: the mapping imports with the archive and the standard library alone.
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from qwen35web.runtime.openai_api.completion import ChatCompletion;"
        "from qwen35web.runtime.openai_api.request import parse_chat_request;"
        "print(parse_chat_request({'model': 'm', 'messages': [{'role': 'user', 'content': 'hi'}]}).model)"
    )
    done = subprocess.run(
        [sys.executable, "-S", "-I", "-c", script, str(archive)], capture_output=True, text=True
    )
    assert done.returncode == 0 and done.stdout.strip() == "m", done.stderr
