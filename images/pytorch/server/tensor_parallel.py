"""Tensor parallelism: one process per GPU, rank 0 serves HTTP and drives the others.

Megatron-style sharding of every decoder layer (llama, mistral, qwen2): q/k/v and gate/up projections are
split by output rows, so each rank holds num_heads/tp query heads, num_kv_heads/tp KV heads (and their KV
cache) and intermediate/tp MLP columns; o_proj and down_proj are split by input columns and their partial
outputs summed with all_reduce. Embeddings, norms and lm_head stay whole on every rank, so every rank computes
the same logits. transformers' attention reshapes with -1 heads, so the sharded projections need no other
change. Every rank builds the same random (or loaded) model from the same seed, then keeps its own share.

Rank 0 runs the engine; each runner call (prefill, decode, keep, reset, close) is broadcast first, with the
inputs the other ranks need (prompt ids, pending tokens, row indices), and every rank runs the same forward
in the same order, so the collectives match. The same code runs with NCCL on GPUs and with gloo on CPU (the
tests compare TP=2 on gloo with TP=1).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import sys
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from .config import ServerConfig
from .runner import Sampling, Sequence

log = logging.getLogger("llem.server.tp")

# Model load on another rank can take minutes (a large checkpoint): the group waits that long for it.
INIT_TIMEOUT = timedelta(minutes=30)


class TensorParallelError(ValueError):
    """The model cannot be split over this many ranks."""


def free_init_method() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{s.getsockname()[1]}"


def _die_with_parent() -> None:
    # Linux prctl(PR_SET_PDEATHSIG, SIGTERM): a rank whose rank 0 died does not wait forever in a collective.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def launch_ranks(argv: list[str], world: int, init_method: str) -> list[subprocess.Popen]:
    """Ranks 1..world-1 as child processes of rank 0, in its process group (the agent watches the whole tree)."""
    procs = []
    for rank in range(1, world):
        cmd = [sys.executable, "-m", "server", *argv, "--tp-rank", str(rank), "--tp-init-method", init_method]
        # Their stdout is rank 0's event stream: the other ranks write only to stderr.
        procs.append(subprocess.Popen(cmd, stdout=sys.stderr, preexec_fn=_die_with_parent))
    return procs


def rank_device(cfg: ServerConfig) -> str:
    """Rank r uses the r-th visible GPU (CUDA_VISIBLE_DEVICES lists exactly the run's GPUs), or the CPU."""
    if cfg.device not in ("auto", "cuda"):
        return cfg.device
    if torch.cuda.is_available():
        return f"cuda:{cfg.tp_rank}"
    return "cpu"


def init_group(cfg: ServerConfig, device: str) -> None:
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if device.startswith("cuda"):
        torch.cuda.set_device(torch.device(device))
    dist.init_process_group(backend, init_method=cfg.tp_init_method, rank=cfg.tp_rank,
                            world_size=cfg.tensor_parallel_size, timeout=INIT_TIMEOUT)
    log.info("rank %d of %d joined (%s on %s)", cfg.tp_rank, cfg.tensor_parallel_size, backend, device)


class RowParallelLinear(nn.Module):
    """This rank's input columns of a linear layer; the partial products of all ranks are summed."""

    def __init__(self, full: nn.Linear, rank: int, world: int) -> None:
        super().__init__()
        cols = full.in_features // world
        self.weight = nn.Parameter(full.weight.detach()[:, rank * cols:(rank + 1) * cols].clone(), requires_grad=False)
        self.bias = None if full.bias is None else nn.Parameter(full.bias.detach().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight)
        dist.all_reduce(y)
        return y if self.bias is None else y + self.bias


def column_shard(full: nn.Linear, rank: int, world: int) -> nn.Linear:
    """This rank's output rows of a linear layer (bias rows too)."""
    rows = full.out_features // world
    part = nn.Linear(full.in_features, rows, bias=full.bias is not None, device=full.weight.device,
                     dtype=full.weight.dtype)
    with torch.no_grad():
        part.weight.copy_(full.weight[rank * rows:(rank + 1) * rows])
        if full.bias is not None:
            part.bias.copy_(full.bias[rank * rows:(rank + 1) * rows])
    part.requires_grad_(False)
    return part


def check_divisible(conf: Any, world: int) -> None:
    sizes = {"num_attention_heads": conf.num_attention_heads,
             "num_key_value_heads": getattr(conf, "num_key_value_heads", None) or conf.num_attention_heads,
             "intermediate_size": conf.intermediate_size}
    bad = [f"{k} ({v})" for k, v in sizes.items() if v % world != 0]
    if bad:
        raise TensorParallelError(f"--tensor-parallel-size {world} must divide {', '.join(bad)}")


def shard_model(model: Any, rank: int, world: int) -> None:
    """Replaces each decoder layer's projections by this rank's share (in place)."""
    check_divisible(model.config, world)
    for layer in model.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        for name in ("q_proj", "k_proj", "v_proj"):
            setattr(attn, name, column_shard(getattr(attn, name), rank, world))
        attn.o_proj = RowParallelLinear(attn.o_proj, rank, world)
        for name in ("gate_proj", "up_proj"):
            setattr(mlp, name, column_shard(getattr(mlp, name), rank, world))
        mlp.down_proj = RowParallelLinear(mlp.down_proj, rank, world)
    if next(model.parameters()).is_cuda:
        torch.cuda.empty_cache()


def _broadcast(message: Any) -> Any:
    box = [message]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _sampling(s: Sampling) -> tuple:
    return (s.max_tokens, s.temperature, s.top_p, s.ignore_eos, s.min_tokens, s.seed)


class DistributedRunner:
    """Rank 0's runner: tells the other ranks what to run, then runs it itself (same order on every rank)."""

    def __init__(self, runner: Any, procs: list[subprocess.Popen]) -> None:
        self.runner = runner
        self.procs = procs
        self.world = dist.get_world_size()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.runner, name)

    def prefill(self, seqs: list[Sequence]) -> list[int]:
        _broadcast(("prefill", [(s.prompt_ids, _sampling(s.sampling)) for s in seqs]))
        return self.runner.prefill(seqs)

    def decode(self, seqs: list[Sequence]) -> list[int]:
        _broadcast(("decode", [(s.pending, _sampling(s.sampling)) for s in seqs]))
        return self.runner.decode(seqs)

    def keep(self, indices: list[int]) -> None:
        _broadcast(("keep", list(indices)))
        self.runner.keep(indices)

    def reset(self) -> None:
        _broadcast(("reset", None))
        self.runner.reset()

    def memory_stats(self) -> dict[str, Any]:
        return {**self.runner.memory_stats(), "tensorParallelSize": self.world, "rank": 0}

    def close(self) -> None:
        _broadcast(("close", None))
        self.runner.close()
        dist.destroy_process_group()
        for p in self.procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _sequences(rows: list[tuple], prompts: bool) -> list[Sequence]:
    out = []
    for i, (value, sampling) in enumerate(rows):
        s = Sequence(f"tp-{i}", value if prompts else [], Sampling(*sampling))
        if not prompts:
            s.pending = value
        out.append(s)
    return out


def serve_rank(cfg: ServerConfig) -> int:
    """Ranks 1..N-1: build the model, keep this rank's share, run what rank 0 broadcasts until it says close."""
    from .torch_runner import TorchRunner

    device = rank_device(cfg)
    init_group(cfg, device)
    runner = TorchRunner(cfg, device=device)
    while True:
        op, arg = _broadcast(None)
        if op == "prefill":
            runner.prefill(_sequences(arg, prompts=True))
        elif op == "decode":
            runner.decode(_sequences(arg, prompts=False))
        elif op == "keep":
            runner.keep(arg)
        elif op == "reset":
            runner.reset()
        elif op == "close":
            runner.close()
            dist.destroy_process_group()
            return 0


def start_rank0(cfg: ServerConfig, argv: list[str]) -> tuple[str, list[subprocess.Popen]]:
    """Starts the other ranks and joins the group; returns rank 0's device and the other ranks' processes."""
    init_method = cfg.tp_init_method or free_init_method()
    procs = launch_ranks(argv, cfg.tensor_parallel_size, init_method)
    cfg_rank0 = cfg.with_tp(rank=0, init_method=init_method)
    device = rank_device(cfg_rank0)
    try:
        init_group(cfg_rank0, device)
    except Exception:
        for p in procs:
            p.kill()
        raise
    return device, procs


def main_rank(cfg: ServerConfig) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format=f"%(asctime)s %(levelname)s rank{cfg.tp_rank} %(name)s %(message)s")
    try:
        return serve_rank(cfg)
    except Exception:
        log.exception("rank %d failed", cfg.tp_rank)
        return 1
