"""`qwen35web chat --tools FILE.json`: calls are shown, the next stdin line is each call's result,
and the model goes on; bad tool files and choices are one line and exit 2."""

from __future__ import annotations

import json
from pathlib import Path

from tests.runtime.native.test_chat_cli import _chat, _turns
from tests.runtime.tool_fixtures import TOOLS, WEATHER, validate

SAMPLED = ["--temperature", "1.0", "--seed", "7", "--max-new-tokens", "120", "--no-thinking"]


def _tools_file(tmp_path: Path, tools, name: str = "tools.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(tools), encoding="utf-8")
    return path


def test_a_forced_call_then_its_typed_result_then_the_reply(export_bundle, tmp_path):
    tools = _tools_file(tmp_path, TOOLS)
    proc = _chat(
        export_bundle("text", "fused"),
        "--json",
        "--tools",
        str(tools),
        "--tool-choice",
        "get_weather",
        *SAMPLED,
        stdin="Weather in Oslo?\nsunny, 20 degrees\n",
    )
    first, second = _turns(proc)
    (call,) = first["tool_calls"]
    assert call["name"] == "get_weather" and call["error"] is None
    validate(call["arguments"], WEATHER["function"]["parameters"])
    assert second["reused_tokens"] >= first["prompt_tokens"]  # the tool turn resumed from kept state
    assert second["tool_calls"] == [] or all(c["error"] is None for c in second["tool_calls"])


def test_text_mode_shows_each_call(export_bundle, tmp_path):
    tools = _tools_file(tmp_path, TOOLS)
    proc = _chat(
        export_bundle("text", "fused"),
        "--tools",
        str(tools),
        "--tool-choice",
        "now",
        *SAMPLED,
        stdin="What time is it?\n12:00\n",
    )
    assert proc.returncode == 0, proc.stderr
    assert "[tool call] now {}" in proc.stdout


def test_bad_tools_are_one_line_and_exit_2(export_bundle, tmp_path):
    bundle = export_bundle("text", "fused")
    not_json = tmp_path / "bad.json"
    not_json.write_text("[{", encoding="utf-8")
    cases = [
        (["--tools", str(not_json)], "not a readable JSON file"),
        (["--tools", str(_tools_file(tmp_path, [{"type": "function"}], "bad-tool.json"))], "tools[0]"),
        (["--tools", str(_tools_file(tmp_path, TOOLS)), "--tool-choice", "missing"], "not among the tools"),
    ]
    for args, message in cases:
        proc = _chat(bundle, "--json", *args, stdin="hi\n")
        assert proc.returncode == 2, proc.stderr
        assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    proc = _chat(
        bundle,
        "--json",
        "--tools",
        str(_tools_file(tmp_path, TOOLS)),
        "--tool-choice",
        "now",
        "--no-thinking",
        stdin="hi\n",
    )
    assert proc.returncode == 2 and "stdin ended before the result" in proc.stderr
