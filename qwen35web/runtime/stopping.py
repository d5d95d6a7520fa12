"""Stop strings over streamed text: emit what can no longer start a stop string, hold the rest."""

from __future__ import annotations


class StopStringFilter:
    def __init__(self, stop_strings: tuple[str, ...]):
        self.stop_strings = stop_strings
        self.pending = ""
        self.stopped = False

    def _held_suffix(self, text: str) -> int:
        """Length of the longest suffix of `text` that is a proper prefix of some stop string."""
        longest = 0
        for stop in self.stop_strings:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest

    def push(self, text: str) -> str:
        """Text safe to show now; sets `stopped` when a stop string completes (it is not shown)."""
        if self.stopped:
            return ""
        self.pending += text
        hits = [i for i in (self.pending.find(s) for s in self.stop_strings) if i >= 0]
        if hits:
            self.stopped = True
            out, self.pending = self.pending[: min(hits)], ""
            return out
        held = self._held_suffix(self.pending)
        cut = len(self.pending) - held
        out, self.pending = self.pending[:cut], self.pending[cut:]
        return out

    def flush(self) -> str:
        out, self.pending = ("" if self.stopped else self.pending), ""
        return out
