"""The static-cache decode runner (--cuda-graphs) against the eager runner, step by step.

On CPU the static step runs without graphs; on the GPU (LLEM_TEST_DEVICE=cuda) it is replayed from
captured graphs. Either way its logits must be the eager runner's, through admissions that shift
the batch, retirements that compact it, and trims of all-padding columns.
"""

from __future__ import annotations

import os
import time

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from server.config import RandomArchitecture, ServerConfig  # noqa: E402
from server.engine import Engine  # noqa: E402
from server.graph_runner import GraphRunner  # noqa: E402
from server.runner import Sampling, Sequence  # noqa: E402
from server.torch_runner import TorchRunner  # noqa: E402

DEVICE = os.environ.get("LLEM_TEST_DEVICE", "cpu")
TINY = RandomArchitecture(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128,
                          vocab_size=512, max_position_embeddings=256)


def make(cls, arch: RandomArchitecture = TINY, **extra):
    cfg = ServerConfig(source="random", random=arch, device=DEVICE, dtype="float32", seed=3, max_batch_size=6,
                       cuda_graphs=cls is GraphRunner, **extra)
    runner = cls(cfg)
    seen: list[torch.Tensor] = []

    def sample(logits, seqs):
        seen.append(logits.float().cpu().clone())
        return [int(t) for t in logits.argmax(dim=-1).tolist()]

    runner._sample = sample
    return runner, seen


@pytest.fixture(scope="module", params=["eager", "sdpa"])
def pair(request):
    """Prefill attention follows --attn-implementation: both ways are checked."""
    return make(TorchRunner, attn_implementation=request.param), make(GraphRunner, attn_implementation=request.param)


def seq(name: str, prompt: list[int], max_tokens: int = 64) -> Sequence:
    return Sequence(name, prompt, Sampling(max_tokens=max_tokens))


SCRIPT = [
    ("prefill", [[5, 6, 7], [9] * 11]),
    ("decode", 3),
    ("prefill", [[3, 100, 200, 300, 400, 17] * 4]),  # longer than the write column: the batch shifts right
    ("decode", 2),
    ("keep", [0, 2]),  # the 11-token row leaves; rows are compacted
    ("decode", 2),
    ("prefill", [[1, 2], [8, 8, 8, 8]]),
    ("decode", 4),
    ("keep", [3]),  # only a late short row stays: leading columns are trimmed
    ("write", 8),  # its 4 prompt tokens + 4 decoded: nothing to its left is kept
    ("decode", 3),
    ("keep", []),
    ("prefill", [[42] * 30]),
    ("decode", 2),
    ("prefill", [[13, 14] * 63]),  # 126 columns: the third step writes column 128, in the next width bucket
    ("decode", 3),
]
SCRIPT_STEPS = 24


def drive(eager, eager_seen, static, static_seen) -> None:
    for runner in (eager, static):
        runner.reset()
    eager_seen.clear()
    static_seen.clear()
    rows: list[Sequence] = []
    for op, arg in SCRIPT:
        if op == "prefill":
            new = [seq(f"r{len(rows) + i}", p) for i, p in enumerate(arg)]
            a = eager.prefill(new)
            b = static.prefill(new)
            assert a == b
            for s, t in zip(new, a):
                s.pending = t
            rows += new
        elif op == "decode":
            for _ in range(arg):
                a = eager.decode(rows)
                b = static.decode(rows)
                assert a == b
                for s, t in zip(rows, a):
                    s.pending = t
        elif op == "write":
            assert static._write == arg, "all-padding columns were not trimmed"
        else:
            eager.keep(arg)
            static.keep(arg)
            rows = [rows[i] for i in arg]
    assert len(eager_seen) == len(static_seen) == SCRIPT_STEPS
    for i, (x, y) in enumerate(zip(eager_seen, static_seen)):
        assert x.shape == y.shape, f"step {i}"
        assert torch.allclose(x, y, atol=2e-4, rtol=1e-4), f"step {i}: max diff {(x - y).abs().max().item()}"
    assert static._write > 128, "the script never left the first width bucket"


def test_static_decode_gives_the_eager_runners_logits_through_admissions_and_retirements(pair):
    (eager, eager_seen), (static, static_seen) = pair
    drive(eager, eager_seen, static, static_seen)


@pytest.mark.parametrize("architecture", ["mistral", "qwen2"])
def test_the_other_llama_family_layouts_match_too(architecture):
    """qwen2's projection biases (zero in a random model: filled here) and mistral's layout."""
    arch = RandomArchitecture(**{**TINY.__dict__, "architecture": architecture})
    (eager, eager_seen), (static, static_seen) = make(TorchRunner, arch), make(GraphRunner, arch)
    gen = torch.Generator().manual_seed(9)
    filled = 0
    with torch.no_grad():
        for a, b in zip(eager.model.model.layers, static.model.model.layers):
            for name in ("q_proj", "k_proj", "v_proj"):
                bias = getattr(a.self_attn, name).bias
                if bias is not None:
                    values = torch.randn(bias.shape, generator=gen) * 0.5
                    bias.copy_(values)
                    getattr(b.self_attn, name).bias.copy_(values)
                    filled += 1
    assert filled == (6 if architecture == "qwen2" else 0)
    drive(eager, eager_seen, static, static_seen)


def test_static_batching_runs_past_the_columns_when_finished_rows_give_theirs_up():
    """Static batching keeps finished rows in the batch; a long finished prompt must not exhaust the
    static width while a short request still has tokens to go (both fit max_model_len)."""
    outputs: dict[str, dict[str, object]] = {}
    for cls in (TorchRunner, GraphRunner):
        runner, _ = make(cls, max_model_len=64)
        done: dict[str, object] = {}
        tokens: dict[str, list[int]] = {}

        def emit(events, done=done, tokens=tokens):
            for s, tok, reason in events:
                if tok is not None:
                    tokens.setdefault(s.request_id, []).append(tok)
                if reason is not None:
                    done[s.request_id] = reason

        engine = Engine(runner, None, batching="static", max_batch_size=4, batch_wait_ms=50, emit=emit)
        engine.start()
        engine.submit(seq("long", [3] * 60, max_tokens=2))
        engine.submit(seq("short", [4, 5, 6], max_tokens=20))
        deadline = time.monotonic() + 60
        while len(done) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        engine.stop()
        assert engine.error is None, f"{cls.__name__}: {engine.error}"
        outputs[cls.__name__] = {"done": done, "tokens": tokens}
    assert outputs["GraphRunner"]["done"] == {"long": "length", "short": "length"}
    assert outputs["GraphRunner"]["tokens"] == outputs["TorchRunner"]["tokens"]


def test_a_batch_larger_than_max_batch_size_is_refused(pair):
    _, (static, _) = pair
    static.reset()
    with pytest.raises(RuntimeError, match="exceeds max_batch_size 6"):
        static.prefill([seq(f"x{i}", [1, 2, 3]) for i in range(7)])
    static.reset()


def test_cuda_graphs_refuses_an_architecture_it_does_not_implement(monkeypatch):
    import server.graph_runner as graph_runner

    monkeypatch.setattr(graph_runner, "GRAPH_ARCHITECTURES", ("qwen2",))
    with pytest.raises(ValueError, match="this model is 'llama': run it without --cuda-graphs"):
        make(GraphRunner)


def test_cuda_graphs_refuses_sliding_window_attention_and_length_dependent_rotary():
    from transformers import AutoConfig

    runner, _ = make(GraphRunner)
    conf = AutoConfig.for_model("mistral", sliding_window=128)
    with pytest.raises(ValueError, match="does not implement sliding-window attention .*--max-model-len <= 128"):
        runner._check_supported(conf)
    runner._check_supported(AutoConfig.for_model("mistral", sliding_window=4096))  # wider than max_model_len 256
    rotary = runner.model.model.rotary_emb
    saved = rotary.rope_type
    try:
        rotary.rope_type = "dynamic"
        with pytest.raises(ValueError, match="rotary types default, linear, llama3, yarn; this model's is 'dynamic'"):
            runner._check_supported(runner.model.config)
    finally:
        rotary.rope_type = saved
