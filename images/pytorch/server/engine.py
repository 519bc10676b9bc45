"""The scheduler: one thread drives the runner; HTTP handlers submit sequences and receive tokens.

dynamic (continuous) batching: before every decode step, waiting sequences are prefilled into the
running batch while it has free slots, and finished rows leave after every step.
static batching: a batch is formed only when none is running (waiting up to batch_wait_ms for it to
fill), and it runs until its longest member finishes; finished rows stay in the batch and keep being
computed, as with transformers' generate(), so the energy reflects what static batching costs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable

from .runner import BatchRunner, Sequence

log = logging.getLogger("llem.server.engine")

Emit = Callable[[list[tuple[Sequence, int | None, str | None]]], None]


@dataclass
class EngineCounters:
    steps: int = 0
    prefills: int = 0
    rows_computed: int = 0
    max_batch_rows: int = 0
    requests_finished: int = 0
    prompt_tokens: int = 0
    generation_tokens: int = 0
    prefill_seconds: float = 0.0
    decode_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        mean = self.rows_computed / self.steps if self.steps else None
        return {
            "decodeSteps": self.steps,
            "prefillBatches": self.prefills,
            "meanBatchRows": mean,
            "maxBatchRows": self.max_batch_rows,
            "requestsFinished": self.requests_finished,
            "promptTokens": self.prompt_tokens,
            "generationTokens": self.generation_tokens,
            "prefillSeconds": round(self.prefill_seconds, 4),
            "decodeSeconds": round(self.decode_seconds, 4),
        }


class Engine:
    def __init__(self, runner: BatchRunner, eos_token_id: int | None, *, batching: str, max_batch_size: int,
                 batch_wait_ms: float, emit: Emit) -> None:
        if batching not in ("static", "dynamic"):
            raise ValueError(f"unknown batching mode {batching!r}")
        self.runner = runner
        self.eos_token_id = eos_token_id
        self.batching = batching
        self.max_batch_size = max_batch_size
        self.batch_wait_s = batch_wait_ms / 1000.0
        self._emit = emit
        self._waiting: deque[Sequence] = deque()
        self._running: list[Sequence] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.counters = EngineCounters()
        self.error: BaseException | None = None

    # ---------------------------------------------------------------- called from the event loop

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="llem-engine", daemon=True)
        self._thread.start()

    def submit(self, seq: Sequence) -> None:
        if self.error is not None:
            raise RuntimeError(f"engine failed: {self.error}")
        with self._cond:
            self._waiting.append(seq)
            self._cond.notify()

    def cancel(self, seq: Sequence) -> None:
        seq.cancelled = True
        with self._cond:
            self._cond.notify()

    def stop(self, timeout_s: float = 30.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def load(self) -> dict[str, int]:
        with self._cond:
            return {"running": len(self._running), "waiting": len(self._waiting)}

    # ---------------------------------------------------------------- the engine thread

    def _loop(self) -> None:
        try:
            while True:
                admitted = self._next_admissions()
                if admitted is None:
                    break
                # Events are emitted after each forward pass, so a prefill's first token is not held
                # back by the decode step that follows it (that would inflate the measured TTFT).
                if admitted:
                    self._step(self._prefill, admitted)
                    self._retire()
                if self._running:
                    self._step(self._decode, None)
                    self._retire()
        except BaseException as err:  # the server must answer every waiting request, not hang
            log.exception("engine failed")
            self.error = err
        finally:
            self._abort_all("abort" if self.error is None else "error")

    def _step(self, phase: Callable[..., None], arg: list[Sequence] | None) -> None:
        events: list[tuple[Sequence, int | None, str | None]] = []
        if arg is None:
            phase(events)
        else:
            phase(arg, events)
        if events:
            self._emit(events)

    def _next_admissions(self) -> list[Sequence] | None:
        """Block until there is work; return sequences to prefill now ([] = just decode), None = stop."""
        with self._cond:
            while not self._stop and not self._waiting and not self._running:
                self._cond.wait()
            if self._stop:
                return None
            self._drop_cancelled_waiting()
            if self.batching == "dynamic":
                free = self.max_batch_size - len(self._running)
                return [self._waiting.popleft() for _ in range(min(free, len(self._waiting)))]
            if self._running:
                return []
            deadline = time.monotonic() + self.batch_wait_s
            while not self._stop and len(self._waiting) < self.max_batch_size:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._stop:
                return None
            self._drop_cancelled_waiting()
            return [self._waiting.popleft() for _ in range(min(self.max_batch_size, len(self._waiting)))]

    def _drop_cancelled_waiting(self) -> None:
        kept = deque(s for s in self._waiting if not s.cancelled)
        for s in self._waiting:
            if s.cancelled:
                s.finish_reason = "abort"
        self._waiting = kept

    def _prefill(self, seqs: list[Sequence], events: list[tuple[Sequence, int | None, str | None]]) -> None:
        started = time.monotonic()
        tokens = self.runner.prefill(seqs)
        self.counters.prefill_seconds += time.monotonic() - started
        self.counters.prefills += 1
        for seq, tok in zip(seqs, tokens):
            self.counters.prompt_tokens += len(seq.prompt_ids)
            self._accept(seq, tok, events)
        with self._cond:
            self._running.extend(seqs)

    def _decode(self, events: list[tuple[Sequence, int | None, str | None]]) -> None:
        feed = [s for s in self._running if s.pending is not None]
        if not feed:
            return
        if len(feed) != len(self._running):
            raise RuntimeError("every running row must have a pending token")
        started = time.monotonic()
        tokens = self.runner.decode(self._running)
        self.counters.decode_seconds += time.monotonic() - started
        self.counters.steps += 1
        self.counters.rows_computed += len(self._running)
        self.counters.max_batch_rows = max(self.counters.max_batch_rows, len(self._running))
        for seq, tok in zip(self._running, tokens):
            if seq.finished:
                seq.pending = tok  # static batching: a finished row is still computed, its output dropped
                continue
            self._accept(seq, tok, events)

    def _accept(self, seq: Sequence, tok: int, events: list[tuple[Sequence, int | None, str | None]]) -> None:
        seq.pending = tok
        if seq.cancelled:
            seq.finish_reason = "abort"
            events.append((seq, None, "abort"))
            return
        is_eos = tok == self.eos_token_id and not seq.sampling.ignore_eos
        if is_eos and len(seq.output_ids) >= seq.sampling.min_tokens:
            seq.finish_reason = "stop"
            self.counters.requests_finished += 1
            events.append((seq, None, "stop"))
            return
        seq.output_ids.append(tok)
        self.counters.generation_tokens += 1
        total = len(seq.prompt_ids) + len(seq.output_ids)
        if len(seq.output_ids) >= seq.sampling.max_tokens or total >= self.runner.max_model_len:
            seq.finish_reason = "length"
            self.counters.requests_finished += 1
        events.append((seq, tok, seq.finish_reason))

    def _retire(self) -> None:
        """Drop finished rows: dynamic after every step; static only when the whole batch is done."""
        for seq in self._running:
            if seq.cancelled and not seq.finished:
                seq.finish_reason = "abort"
                self._emit([(seq, None, "abort")])
        if self.batching == "static" and not all(s.finished for s in self._running):
            return
        keep = [i for i, s in enumerate(self._running) if not s.finished]
        if len(keep) == len(self._running):
            return
        self.runner.keep(keep)
        with self._cond:
            self._running = [self._running[i] for i in keep]

    def _abort_all(self, reason: str) -> None:
        with self._cond:
            pending = [s for s in list(self._waiting) + self._running if not s.finished]
            self._waiting.clear()
            self._running = []
        for s in pending:
            s.finish_reason = reason
        if pending:
            self._emit([(s, None, reason) for s in pending])
        try:
            self.runner.reset()
        except Exception:  # best effort: the process is going down
            log.exception("runner reset failed")
