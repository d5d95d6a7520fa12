"""`qwen35web chat`: scripted (one message per stdin line, JSON per turn), save and resume, bad
input as one line, and the interactive terminal driven through tmux (Ctrl+C included)."""

from __future__ import annotations

import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FIELDS = (
    "tokens",
    "text",
    "reasoning",
    "prompt_tokens",
    "reused_tokens",
    "prefilled_tokens",
    "prefill_ms",
    "decode_tokens_per_s",
    "stop_reason",
)
LINES = ["Hello there", "What is json?", "And pathlib?"]
GREEDY = ["--greedy", "--max-new-tokens", "10"]
LONG_REPLY = ["--max-new-tokens", "3000", "--min-new-tokens", "3000"]


def _chat(bundle: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "qwen35web", "chat", str(bundle), *args]
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300
    )


def _turns(proc: subprocess.CompletedProcess) -> list[dict]:
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_scripted_json_one_object_per_turn(export_bundle):
    turns = _turns(_chat(export_bundle("text", "fused"), "--json", *GREEDY, stdin="\n".join(LINES) + "\n"))
    assert len(turns) == len(LINES)
    for turn in turns:
        assert set(FIELDS) <= set(turn)
        assert turn["reused_tokens"] + turn["prefilled_tokens"] == turn["prompt_tokens"]
    assert turns[0]["reused_tokens"] == 0
    assert all(
        later["reused_tokens"] >= earlier["prompt_tokens"] for earlier, later in itertools.pairwise(turns)
    )


def test_a_full_context_ends_the_script_or_drops_the_oldest_turns(export_bundle):
    bundle = export_bundle("text", "fused")
    small = ["--json", *GREEDY, "--max-context", "100"]
    stdin = "\n".join(LINES * 3) + "\n"
    refused = _chat(bundle, *small, stdin=stdin)
    assert refused.returncode != 0
    assert "start a new chat" in refused.stderr and "--drop-oldest" in refused.stderr
    assert len(refused.stdout.splitlines()) < len(LINES) * 3  # the turns before it were answered

    turns = _turns(_chat(bundle, *small, "--drop-oldest", stdin=stdin))
    assert len(turns) == len(LINES) * 3
    dropping = [t for t in turns if t["dropped_turns"]]
    assert dropping and all(t["dropped_messages"] == 2 * t["dropped_turns"] for t in dropping)
    assert all(t["prompt_tokens"] + 10 < 100 for t in turns)

    text = _chat(bundle, *small[1:], "--drop-oldest", stdin=stdin)
    assert text.returncode == 0, text.stderr
    assert "oldest turn" in text.stderr and "the model re-read the rest" in text.stderr


def test_save_then_resume_continues_without_the_history(export_bundle, tmp_path):
    bundle, saved = export_bundle("text", "fused"), tmp_path / "chat.q35"
    whole = _turns(_chat(bundle, "--json", *GREEDY, stdin="\n".join(LINES) + "\n"))
    first = _turns(_chat(bundle, "--json", *GREEDY, "--save", str(saved), stdin="\n".join(LINES[:2]) + "\n"))
    resumed = _turns(_chat(bundle, "--json", *GREEDY, "--resume", str(saved), stdin=LINES[2] + "\n"))
    assert [t["tokens"] for t in first + resumed] == [t["tokens"] for t in whole]
    assert resumed[0]["prompt_tokens"] == whole[2]["prompt_tokens"]
    assert resumed[0]["reused_tokens"] >= first[1]["prompt_tokens"]  # the history was not prefilled


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--temperature", "0"], "hi\n", "temperature"),
        (["--resume", "/nonexistent/chat.q35"], "hi\n", "cannot read"),
        (["--resume", "x.q35", "--system", "s"], "hi\n", "--system"),
        ([], "json " * 5000 + "\n", "context holds"),
    ],
    ids=["bad-sampling", "missing-resume", "system-and-resume", "context-full"],
)
def test_bad_input_is_one_line(export_bundle, args, stdin, message):
    proc = _chat(export_bundle("text", "fused"), *args, stdin=stdin)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1, proc.stderr
    assert message in proc.stderr


def test_a_bad_saved_conversation_file_is_one_line(export_bundle, tmp_path):
    bad = tmp_path / "bad.q35"
    bad.write_bytes(b"Q35CHAT\x00" + b"\x01" * 60)
    proc = _chat(export_bundle("text", "fused"), "--resume", str(bad), stdin="hi\n")
    assert proc.returncode == 2 and proc.stderr.count("error:") == 1 and "Traceback" not in proc.stderr
    assert str(bad) in proc.stderr


EXIT_MARKER = "QWEN35WEB-EXITED-WITH"


class Tmux:
    """One tmux session running a command in a real terminal.

    The command's exit status is read from a line the wrapping shell prints when the command ends, not from
    tmux's `pane_dead_status` (tmux 3.3a may show a dead pane with an empty status until it reaps the child,
    which here sometimes never happens). The shell then waits, so the pane and its screen stay."""

    def __init__(self, name: str, command: str):
        self.name = name
        wrapped = f"{command}; echo {EXIT_MARKER}=$?; exec sleep 600"
        self._tmux("new-session", "-d", "-s", name, "-x", "160", "-y", "50", wrapped)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def type_line(self, text: str) -> None:
        """Type at the prompt once the program reads it (the echo shows), then press Enter."""
        self.wait_for(lambda s: s.rstrip().endswith("you>"))
        self.keys("-l", text)
        self.wait_for(lambda s: s.rstrip().endswith(f"you> {text}"))
        self.keys("Enter")

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-J", "-S", "-200", "-t", self.name)

    def wait_for(self, predicate, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.05)
        raise AssertionError(f"timed out; the terminal shows:\n{self.screen()}")

    def exit_status(self) -> int | None:
        """The command's exit status once it has ended (the wrapper's marker line), None while it runs."""
        for line in self.screen().splitlines():
            if line.startswith(f"{EXIT_MARKER}="):
                return int(line.split("=", 1)[1])
        return None

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True, check=False)


def test_interactive_terminal_through_tmux(export_bundle, tmp_path):
    if shutil.which("tmux") is None:
        pytest.fail("this test needs tmux: `apt-get install -y tmux` (or `make setup`)")
    bundle, saved = export_bundle("text", "fused"), tmp_path / "chat.q35"
    # Long replies (no end-of-sequence before 3,000 tokens) so that Ctrl+C lands while one streams.
    command = shlex.join([sys.executable, "-m", "qwen35web", "chat", str(bundle), "--seed", "1", *LONG_REPLY])
    term = Tmux(f"q35chat{os.getpid()}", f"cd {shlex.quote(str(ROOT))} && PYTHONPATH=. {command}")
    try:
        term.type_line("hello")
        term.wait_for(lambda s: len(s.split("you> hello", 1)[-1].strip()) > 40)  # the reply streams
        term.keys("C-c")
        screen = term.wait_for(lambda s: "tokens reused" in s)
        assert "[stopped]" in screen and term.exit_status() is None
        stats = next(line for line in screen.splitlines() if "tokens reused" in line)
        used = int(stats.split("context ", 1)[1].split("/", 1)[0])
        assert used < 3000  # it stopped early
        term.wait_for(lambda s: s.rstrip().endswith("you>"))
        term.keys("C-c")  # at the prompt: the program stays
        term.wait_for(lambda s: "Ctrl+D or /quit to leave" in s)
        term.type_line(f"/save {saved}")
        term.wait_for(lambda s: f"saved to {saved}" in s)
        term.type_line("/reset")
        term.wait_for(lambda s: "new chat" in s)
        term.type_line("/quit")
        term.wait_for(lambda s: term.exit_status() is not None, timeout=90)  # exit tears down onnxruntime
        assert term.exit_status() == 0
    finally:
        term.close()
    resumed = _turns(_chat(bundle, "--json", *GREEDY, "--resume", str(saved), stdin="and then?\n"))
    assert resumed[0]["reused_tokens"] > 0


def test_interactive_drop_resends_a_refused_message(export_bundle):
    if shutil.which("tmux") is None:
        pytest.fail("this test needs tmux: `apt-get install -y tmux` (or `make setup`)")
    args = ["chat", str(export_bundle("text", "fused")), *GREEDY, "--max-context", "80"]
    command = shlex.join([sys.executable, "-m", "qwen35web", *args])
    term = Tmux(f"q35drop{os.getpid()}", f"cd {shlex.quote(str(ROOT))} && PYTHONPATH=. {command}")
    try:
        term.type_line("/drop")  # nothing was refused yet
        term.wait_for(lambda s: "nothing to resend" in s)
        for sent in range(1, 9):
            term.type_line("Tell me everything about json and pathlib.")
            screen = term.wait_for(lambda s, n=sent: s.count("tokens reused") + s.count("context full") >= n)
            if "context full" in screen:
                break
        assert "/drop sends this message without the oldest turns" in screen
        term.type_line("/drop")
        screen = term.wait_for(lambda s: "the model re-read the rest" in s)
        assert "oldest turn" in screen.split("/drop sends this message", 1)[1]
        term.type_line("/quit")
        term.wait_for(lambda s: term.exit_status() is not None, timeout=90)
        assert term.exit_status() == 0
    finally:
        term.close()


def test_a_reasoning_budget_closes_the_reasoning_and_the_next_turn_goes_on(export_bundle, tmp_path):
    from qwen35web.runtime.sampling import DEFAULT_NUDGE
    from tests.runtime.test_reasoning_budget import THINKING_TEMPLATE

    bundle = tmp_path / "thinking"
    shutil.copytree(export_bundle("text", "fused"), bundle)
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["chat_template"] = THINKING_TEMPLATE  # the generation prompt opens the reasoning
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    budget = ["--reasoning-budget", "4", "--max-new-tokens", "30", "--min-new-tokens", "30", "--seed", "3"]
    turns = _turns(_chat(bundle, "--json", *budget, "--presence-penalty", "1", stdin="Hi\nAnd then?\n"))
    assert [t["reasoning_cut"] for t in turns] == [True, True]
    assert all(t["reasoning"].endswith(DEFAULT_NUDGE) and t["text"] for t in turns)
    assert turns[1]["reused_tokens"] >= turns[0]["prompt_tokens"]
    refused = _chat(bundle, "--reasoning-budget", "0", stdin="Hi\n")
    assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [
        "error: reasoning_budget must be an integer >= 1, got 0"
    ]
