"""The static-cache decode runner (--cuda-graphs) against the eager runner, step by step.

On CPU the static step runs without graphs; on the GPU (LLEM_TEST_DEVICE=cuda) it is replayed from
captured graphs. Either way its logits must be the eager runner's, through admissions that shift
the batch, retirements that compact it, and trims of all-padding columns.
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from server.config import RandomArchitecture, ServerConfig  # noqa: E402
from server.graph_runner import GraphRunner  # noqa: E402
from server.runner import Sampling, Sequence  # noqa: E402
from server.torch_runner import TorchRunner  # noqa: E402

DEVICE = os.environ.get("LLEM_TEST_DEVICE", "cpu")
TINY = RandomArchitecture(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128,
                          vocab_size=512, max_position_embeddings=256)


def make(cls, **extra):
    cfg = ServerConfig(source="random", random=TINY, device=DEVICE, dtype="float32", seed=3, max_batch_size=6,
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


def seq(name: str, prompt: list[int]) -> Sequence:
    return Sequence(name, prompt, Sampling(max_tokens=64))


def test_static_decode_gives_the_eager_runners_logits_through_admissions_and_retirements(pair):
    (eager, eager_seen), (static, static_seen) = pair
    script = [
        ("prefill", [[5, 6, 7], [9] * 11]),
        ("decode", 3),
        ("prefill", [[3, 100, 200, 300, 400, 17] * 4]),  # longer than the write column: the batch shifts right
        ("decode", 2),
        ("keep", [0, 2]),  # the 11-token row leaves; rows are compacted
        ("decode", 2),
        ("prefill", [[1, 2], [8, 8, 8, 8]]),
        ("decode", 4),
        ("keep", [3]),  # only a late short row stays: leading columns are trimmed
        ("decode", 3),
        ("keep", []),
        ("prefill", [[42] * 30]),
        ("decode", 2),
    ]
    for runner in (eager, static):
        runner.reset()
    rows: list[Sequence] = []
    for op, arg in script:
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
        else:
            eager.keep(arg)
            static.keep(arg)
            rows = [rows[i] for i in arg]
    assert len(eager_seen) == len(static_seen) == 20
    for i, (x, y) in enumerate(zip(eager_seen, static_seen)):
        assert x.shape == y.shape, f"step {i}"
        assert torch.allclose(x, y, atol=2e-4, rtol=1e-4), f"step {i}: max diff {(x - y).abs().max().item()}"
    assert static._write <= 40, "all-padding columns were not trimmed"


@pytest.mark.parametrize("architecture", ["mistral", "qwen2"])
def test_the_other_llama_family_layouts_match_too(architecture):
    """qwen2 has projection biases; mistral's sliding window is off in random models."""
    arch = RandomArchitecture(**{**TINY.__dict__, "architecture": architecture})
    runners = []
    for cls in (TorchRunner, GraphRunner):
        cfg = ServerConfig(source="random", random=arch, device=DEVICE, dtype="float32", seed=5, max_batch_size=4,
                           cuda_graphs=cls is GraphRunner)
        runners.append(cls(cfg))
    rows = [seq("a", [4, 5, 6]), seq("b", [7] * 9)]
    picks = [r.prefill(rows) for r in runners]
    assert picks[0] == picks[1]
    for _ in range(4):
        for s, t in zip(rows, picks[0]):
            s.pending = t
        picks = [r.decode(rows) for r in runners]
        assert picks[0] == picks[1]
    for r in runners:
        r.keep([1])
    rows = rows[1:]
    rows[0].pending = picks[0][1]
    assert runners[0].decode(rows) == runners[1].decode(rows)


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
