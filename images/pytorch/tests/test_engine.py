"""The scheduler's batching policies, driven directly with the fake runner (no HTTP, no torch)."""

from __future__ import annotations

import threading
import time

from server.engine import Engine
from server.fake import FakeRunner
from server.runner import Sampling, Sequence
from server.tokenizers import EOS_ID


class Collector:
    def __init__(self) -> None:
        self.tokens: dict[str, list[int]] = {}
        self.finish: dict[str, str] = {}
        self.first_token_at: dict[str, float] = {}
        self.done = threading.Event()
        self.expected = 0

    def __call__(self, events):
        for seq, tok, reason in events:
            if tok is not None:
                self.tokens.setdefault(seq.request_id, []).append(tok)
                self.first_token_at.setdefault(seq.request_id, time.monotonic())
            if reason is not None:
                self.finish[seq.request_id] = reason
        if len(self.finish) >= self.expected:
            self.done.set()


def run(batching: str, requests: list[tuple[str, int, float]], *, max_batch: int = 8, wait_ms: float = 0,
        runner: FakeRunner | None = None, sampling: dict | None = None) -> tuple[Collector, FakeRunner, Engine]:
    """requests: (id, max_tokens, submit delay in seconds)."""
    runner = runner or FakeRunner(step_seconds=0.005)
    out = Collector()
    out.expected = len(requests)
    engine = Engine(runner, EOS_ID, batching=batching, max_batch_size=max_batch, batch_wait_ms=wait_ms, emit=out)
    engine.start()
    t0 = time.monotonic()
    for rid, max_tokens, delay in sorted(requests, key=lambda r: r[2]):
        time.sleep(max(0.0, t0 + delay - time.monotonic()))
        engine.submit(Sequence(rid, [3, 4, 5], Sampling(max_tokens=max_tokens, **(sampling or {}))))
    assert out.done.wait(20)
    engine.stop()
    return out, runner, engine


def test_dynamic_batching_admits_a_late_request_into_the_running_batch():
    out, runner, engine = run("dynamic", [("long", 60, 0.0), ("late", 5, 0.05)])
    assert engine.counters.max_batch_rows == 2
    assert out.finish == {"long": "length", "late": "length"}
    assert len(out.tokens["late"]) == 5 and len(out.tokens["long"]) == 60
    # The late request finished long before the long one and left the batch: later steps had one row.
    assert runner.calls[-1] == ("decode", 1)


def test_static_batching_makes_a_late_request_wait_for_the_whole_batch():
    out, runner, engine = run("static", [("long", 40, 0.0), ("late", 5, 0.05)])
    assert engine.counters.max_batch_rows == 1
    assert out.first_token_at["late"] > out.first_token_at["long"] + 39 * runner.step_seconds
    assert [c for c in runner.calls if c[0] == "prefill"] == [("prefill", 1), ("prefill", 1)]


def test_static_batching_keeps_finished_rows_until_the_longest_is_done():
    requests = [("a", 2, 0.0), ("b", 10, 0.0), ("c", 10, 0.0), ("d", 3, 0.0)]
    _out, runner, engine = run("static", requests, max_batch=4, wait_ms=200)
    assert runner.calls[0] == ("prefill", 4)
    decodes = [n for kind, n in runner.calls if kind == "decode"]
    assert decodes == [4] * 9  # the first token comes from the prefill; 9 more steps, all with 4 rows
    assert engine.counters.prefills == 1


def test_dynamic_batching_drops_finished_rows_after_each_step():
    requests = [("a", 2, 0.0), ("b", 10, 0.0), ("c", 10, 0.0), ("d", 3, 0.0)]
    _out, runner, _engine = run("dynamic", requests, max_batch=4)
    decodes = [n for kind, n in runner.calls if kind == "decode"]
    assert max(decodes) >= 3 and decodes[-1] <= 2
    assert sum(decodes) < 4 * 9


def test_the_batch_never_exceeds_max_batch_size():
    requests = [(f"r{i}", 6, 0.0) for i in range(10)]
    out, _runner, engine = run("dynamic", requests, max_batch=3)
    assert engine.counters.max_batch_rows == 3
    assert all(len(v) == 6 for v in out.tokens.values()) and len(out.finish) == 10


def test_eos_stops_a_sequence_unless_ignore_eos_is_set():
    out, _, _ = run("dynamic", [("e", 50, 0.0)], runner=FakeRunner(step_seconds=0.001, eos_after=4))
    assert out.finish["e"] == "stop" and len(out.tokens["e"]) == 3
    out, _, _ = run("dynamic", [("i", 6, 0.0)], runner=FakeRunner(step_seconds=0.001, eos_after=4),
                    sampling={"ignore_eos": True})
    assert out.finish["i"] == "length" and len(out.tokens["i"]) == 6 and EOS_ID in out.tokens["i"]


def test_a_cancelled_request_leaves_the_batch_and_is_reported_aborted():
    runner = FakeRunner(step_seconds=0.005)
    out = Collector()
    out.expected = 2
    engine = Engine(runner, EOS_ID, batching="dynamic", max_batch_size=4, batch_wait_ms=0, emit=out)
    engine.start()
    a = Sequence("a", [3], Sampling(max_tokens=1000))
    b = Sequence("b", [3], Sampling(max_tokens=20))
    engine.submit(a)
    engine.submit(b)
    time.sleep(0.05)
    engine.cancel(a)
    assert out.done.wait(10)
    engine.stop()
    assert out.finish == {"a": "abort", "b": "length"}
    assert len(out.tokens["a"]) < 1000


def test_stopping_the_engine_aborts_everything_in_flight_or_waiting():
    runner = FakeRunner(step_seconds=0.01)
    out = Collector()
    out.expected = 3
    engine = Engine(runner, EOS_ID, batching="dynamic", max_batch_size=1, batch_wait_ms=0, emit=out)
    engine.start()
    for rid in ("a", "b", "c"):
        engine.submit(Sequence(rid, [3], Sampling(max_tokens=10_000)))
    time.sleep(0.05)
    engine.stop()
    assert out.done.wait(5)
    assert set(out.finish.values()) == {"abort"} and len(out.finish) == 3
    assert runner.rows == []
