"""The real transformers runner on a tiny random Llama (CPU in CI, GPU on the validation machine).

Skipped where torch or transformers is not installed (see scripts/ensure-deps.d/python.sh).
"""

from __future__ import annotations

import os
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from server.config import RandomArchitecture, ServerConfig  # noqa: E402
from server.engine import Engine  # noqa: E402
from server.runner import Sampling, Sequence  # noqa: E402
from server.torch_runner import TorchRunner  # noqa: E402

DEVICE = os.environ.get("LLEM_TEST_DEVICE", "cpu")
TINY = RandomArchitecture(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128,
                          vocab_size=512, max_position_embeddings=256)
TINY_ARGS = ("--source", "random", "--device", DEVICE, "--random-hidden-size", "64", "--random-layers", "2",
             "--random-heads", "4", "--random-kv-heads", "2", "--random-intermediate-size", "128",
             "--random-vocab-size", "512", "--random-max-positions", "256", "--dtype", "float32")


@pytest.fixture(scope="module")
def runner() -> TorchRunner:
    return TorchRunner(ServerConfig(source="random", random=TINY, device=DEVICE, dtype="float32", seed=1))


def generate_alone(runner: TorchRunner, prompt: list[int], n: int) -> list[int]:
    seq = Sequence("solo", prompt, Sampling(max_tokens=n))
    out = [runner.prefill([seq])[0]]
    while len(out) < n:
        seq.pending = out[-1]
        out.append(runner.decode([seq])[0])
    runner.reset()
    return out


def test_a_random_model_loads_without_a_hub_and_reports_load_memory(runner):
    assert runner.parameters > 0 and runner.max_model_len == 256
    mem = runner.memory_stats()
    assert mem["loadPeakBytes"] > 0 and mem["inferencePeakBytes"] > 0
    assert runner.tokenizer.encode("alpha beta gamma") == runner.tokenizer.encode("alpha  beta\ngamma")


def test_batched_decoding_with_padding_gives_the_same_tokens_as_decoding_alone(runner):
    prompts = [[5, 6, 7], [9] * 11, [3, 100, 200, 300, 400, 17]]
    alone = [generate_alone(runner, p, 12) for p in prompts]
    outputs: dict[str, list[int]] = {}
    finished: set[str] = set()

    def emit(events):
        for seq, tok, reason in events:
            if tok is not None:
                outputs.setdefault(seq.request_id, []).append(tok)
            if reason is not None:
                finished.add(seq.request_id)

    engine = Engine(runner, None, batching="dynamic", max_batch_size=8, batch_wait_ms=0, emit=emit)
    engine.start()
    # Staggered arrivals: later prompts are merged into a batch that is already decoding.
    for i, p in enumerate(prompts):
        engine.submit(Sequence(f"r{i}", p, Sampling(max_tokens=12 - 3 * i)))
        time.sleep(0.01)
    deadline = time.monotonic() + 60
    while len(finished) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    engine.stop()
    assert engine.error is None
    for i in range(3):
        assert outputs[f"r{i}"] == alone[i][: 12 - 3 * i], i


def test_sampling_with_temperature_is_seeded_and_stays_in_the_vocabulary(runner):
    seq = Sequence("s", [4, 5, 6], Sampling(max_tokens=4, temperature=1.0, top_p=0.9))
    tokens = runner.prefill([seq])
    runner.reset()
    assert 0 <= tokens[0] < 512


def test_the_server_streams_from_a_random_model_and_frees_memory_on_sigterm(start_server):
    s = start_server(*TINY_ARGS, "--model", "tiny-random-llama")
    info = s.get("/v1/models")[1]["data"][0]["llem"]
    assert info["simulated"] is False and info["parameters"] > 0 and info["source"] == "random"
    events = s.stream("/v1/completions", {"prompt": "the quick brown fox", "max_tokens": 8, "temperature": 0,
                                          "ignore_eos": True})
    chunks = [e for _, e in events if e != "[DONE]"]
    assert len(chunks) == 8
    assert chunks[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 8, "total_tokens": 12}
    stats = s.get("/stats")[1]
    assert stats["memory"]["loadPeakBytes"] > 0 and stats["memory"]["inferencePeakBytes"] > 0
    code, out, err = s.stop()
    assert code == 0, err
    assert '"event": "stopped"' in out
