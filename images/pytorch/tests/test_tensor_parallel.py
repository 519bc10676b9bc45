"""Tensor parallelism on CPU (gloo): the same code path as NCCL on GPUs, two ranks as two processes.

The TP=2 server must generate exactly what the TP=1 server generates from the same seeded random model
(greedy decoding, float32), alone and in a batch whose rows join, finish and leave at different steps.
Skipped where torch or transformers is not installed (scripts/ensure-deps.d/python.sh with
LLEM_PYTORCH_TORCH_TESTS=1 installs them).
"""

from __future__ import annotations

import os
import threading

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("this torch build has no gloo backend", allow_module_level=True)

ARGS = ("--source", "random", "--device", "cpu", "--dtype", "float32", "--seed", "3", "--random-hidden-size", "64",
        "--random-layers", "2", "--random-heads", "4", "--random-kv-heads", "2", "--random-intermediate-size", "128",
        "--random-vocab-size", "512", "--random-max-positions", "256", "--model", "tiny-tp")
PROMPTS = ["the quick brown fox", "alpha beta gamma delta epsilon zeta eta theta", "one", "red green blue " * 5]


def completion(server, prompt: str, max_tokens: int) -> str:
    status, body = server.post("/v1/completions", {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
                                                   "ignore_eos": True})
    assert status == 200, body
    return body["choices"][0]["text"]


def concurrent(server) -> list[str]:
    """All prompts at once, with different lengths: rows are merged into a running batch and dropped from it."""
    out: list[str] = [""] * len(PROMPTS)

    def one(i: int) -> None:
        out[i] = completion(server, PROMPTS[i], 6 + 3 * i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def test_tensor_parallel_two_ranks_on_gloo_generate_exactly_what_one_rank_generates_and_stop_together(start_server):
    one = start_server(*ARGS)
    info_1 = one.get("/v1/models")[1]["data"][0]["llem"]
    alone_1 = [completion(one, p, 12) for p in PROMPTS]
    batch_1 = concurrent(one)
    assert one.stop()[0] == 0
    two = start_server(*ARGS, "--tensor-parallel-size", "2")
    children = _children(two.proc.pid)
    assert len(children) == 1, f"rank 1 runs as rank 0's child: {children}"
    info = two.get("/v1/models")[1]["data"][0]["llem"]
    assert info["tensorParallelSize"] == 2 and info["simulated"] is False
    # Same model, split: rank 0 holds less than all of it (embeddings, norms and lm_head stay whole).
    assert info["parameters"] == info_1["parameters"] == info_1["rank0Parameters"]
    assert info["rank0Parameters"] < info_1["parameters"]
    alone_2 = [completion(two, p, 12) for p in PROMPTS]
    batch_2 = concurrent(two)
    assert alone_2 == alone_1
    assert batch_2 == batch_1
    assert all(len(t.split()) > 0 for t in alone_1)
    # SIGTERM to rank 0: it tells rank 1 to close, both exit.
    code, out, err = two.stop()
    assert code == 0, err
    assert '"event": "stopped"' in out
    for pid in children:
        assert not os.path.exists(f"/proc/{pid}") or _zombie(pid), f"rank process {pid} outlived the server"


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                        out.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
