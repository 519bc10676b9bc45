"""A runner without torch, for tests of the HTTP, SSE and batching behaviour (results are simulated).

Tokens are a deterministic function of the previous token, so streams are reproducible; every
prefill and decode call is recorded (rows per call) so tests can see how requests were batched.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .runner import Sequence
from .tokenizers import EOS_ID, FIRST_WORD_ID


class FakeRunner:
    def __init__(self, vocab_size: int = 32000, max_model_len: int = 4096, step_seconds: float = 0.002,
                 eos_after: int | None = None) -> None:
        self.vocab_size = vocab_size
        self.max_model_len = max_model_len
        self.step_seconds = step_seconds
        # When set, a row emits EOS as its n-th generated token (to test stop handling).
        self.eos_after = eos_after
        self.rows: list[Sequence] = []
        self.calls: list[tuple[str, int]] = []
        self.closed = False
        self._lock = threading.Lock()

    def _next(self, seq: Sequence, prev: int) -> int:
        if self.eos_after is not None and len(seq.output_ids) + 1 >= self.eos_after:
            return EOS_ID
        span = self.vocab_size - FIRST_WORD_ID
        return FIRST_WORD_ID + (prev * 31 + 7) % span

    def prefill(self, seqs: list[Sequence]) -> list[int]:
        time.sleep(self.step_seconds)
        with self._lock:
            self.calls.append(("prefill", len(seqs)))
            self.rows.extend(seqs)
        return [self._next(s, sum(s.prompt_ids)) for s in seqs]

    def decode(self, seqs: list[Sequence]) -> list[int]:
        if [id(s) for s in seqs] != [id(s) for s in self.rows]:
            raise AssertionError("engine and runner disagree on the batch order")
        time.sleep(self.step_seconds)
        with self._lock:
            self.calls.append(("decode", len(seqs)))
        return [self._next(s, s.pending or 0) for s in seqs]

    def keep(self, indices: list[int]) -> None:
        self.rows = [self.rows[i] for i in indices]

    def reset(self) -> None:
        self.rows = []

    def memory_stats(self) -> dict[str, Any]:
        return {"device": "fake", "simulated": True, "loadPeakBytes": None, "inferencePeakBytes": None,
                "allocatedAfterLoadBytes": None, "reason": "fake runner: no device memory"}

    def close(self) -> None:
        self.closed = True
        self.rows = []
