"""PyTorch server steps: eager (baseline) vs --cuda-graphs (static-cache prefill, graph-replayed decode).

Both runners load the same random-initialised model (same seed) on the GPU. For each batch size,
both prefill the same prompts (median of 5 calls) and decode the same tokens (the eager runner's picks are fed to both,
so a rare bf16 argmax tie cannot make their batches diverge); per step we time the whole runner call
(it ends with the host reading the sampled tokens, so the GPU work is included) and compare logits.

    PYTHONPATH=images/pytorch python3 bench/pytorch-cuda-graphs.py [--layers 16 --hidden 2048 ...]

Prints one line per batch size and a final RESULT line (speedups are eager / graphs step time).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from server.config import RandomArchitecture, ServerConfig
from server.graph_runner import GraphRunner
from server.runner import Sampling, Sequence
from server.torch_runner import TorchRunner


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hidden", type=int, default=2048)
    p.add_argument("--layers", type=int, default=16)
    p.add_argument("--heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--intermediate", type=int, default=8192)
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--prompt", type=int, default=256)
    p.add_argument("--steps", type=int, default=128)
    p.add_argument("--attn", default="eager")
    p.add_argument("--device", default="cuda", help="cpu: a smoke test of this script (no graphs there)")
    a = p.parse_args()
    batches = [int(b) for b in a.batches.split(",")]
    arch = RandomArchitecture(hidden_size=a.hidden, num_layers=a.layers, num_heads=a.heads, num_kv_heads=a.kv_heads,
                              intermediate_size=a.intermediate, vocab_size=32000, max_position_embeddings=4096)
    common = dict(source="random", random=arch, device=a.device, dtype="bfloat16" if a.device == "cuda" else "float32", seed=0,
                  max_batch_size=max(batches), attn_implementation=a.attn, max_model_len=a.prompt + a.steps + 8)
    started = time.monotonic()
    eager = TorchRunner(ServerConfig(**common))
    graphs = GraphRunner(ServerConfig(**common, cuda_graphs=True))
    print(f"loaded both runners and captured {len(graphs._graphs)} graphs in {time.monotonic() - started:.1f} s",
          flush=True)
    seen: dict[str, torch.Tensor] = {}

    def recorder(name: str):
        def sample(logits, seqs):
            seen[name] = logits.float()
            return [int(t) for t in logits.argmax(dim=-1).tolist()]
        return sample

    eager._sample, graphs._sample = recorder("eager"), recorder("graphs")
    gen = torch.Generator().manual_seed(1)
    fields: dict[str, str] = {}
    worst_rel = 0.0
    agree = total = 0
    for b in batches:
        prompts = [torch.randint(3, 32000, (a.prompt,), generator=gen).tolist() for _ in range(b)]
        seqs = [Sequence(f"r{i}", pr, Sampling(max_tokens=a.steps + 1)) for i, pr in enumerate(prompts)]
        prefill_ms: dict[str, list[float]] = {"eager": [], "graphs": []}
        picked: dict[str, list[int]] = {}
        for _ in range(5):  # median of 5 (the last one's cache is decoded from)
            for name, runner in (("eager", eager), ("graphs", graphs)):
                runner.reset()
                if a.device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                picked[name] = runner.prefill(seqs)
                prefill_ms[name].append((time.perf_counter() - t0) * 1000)
        prefill = {k: statistics.median(v) for k, v in prefill_ms.items()}
        for s, t in zip(seqs, picked["eager"]):
            s.pending = t
        times = {"eager": [], "graphs": []}
        for step in range(a.steps):
            out = {}
            for name, runner in (("eager", eager), ("graphs", graphs)):
                if a.device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                out[name] = runner.decode(seqs)
                times[name].append(time.perf_counter() - t0)
            x, y = seen["eager"], seen["graphs"]
            worst_rel = max(worst_rel, float((x - y).abs().max() / x.abs().max()))
            agree += sum(1 for i, j in zip(out["eager"], out["graphs"]) if i == j)
            total += b
            for s, t in zip(seqs, out["eager"]):
                s.pending = t
        e_ms = statistics.median(times["eager"][5:]) * 1000
        g_ms = statistics.median(times["graphs"][5:]) * 1000
        print(f"batch {b}: decode eager {e_ms:.2f} ms/step, graphs {g_ms:.2f} ms/step, speedup {e_ms / g_ms:.2f}x; "
              f"prefill eager {prefill['eager']:.2f} ms, static {prefill['graphs']:.2f} ms", flush=True)
        fields[f"b{b}_prefill_eager_ms"] = f"{prefill['eager']:.2f}"
        fields[f"b{b}_prefill_static_ms"] = f"{prefill['graphs']:.2f}"
        fields[f"b{b}_eager_ms"] = f"{e_ms:.2f}"
        fields[f"b{b}_graphs_ms"] = f"{g_ms:.2f}"
        fields[f"b{b}_speedup"] = f"{e_ms / g_ms:.2f}"
    fields["token_agreement_pct"] = f"{100 * agree / total:.2f}"
    fields["max_rel_logit_diff"] = f"{worst_rel:.4f}"
    fields["graphs"] = str(len(graphs._graphs))
    print("RESULT bench=pytorch-cuda-graphs device=" + (torch.cuda.get_device_name().replace(" ", "_") if a.device == "cuda" else "cpu") + " "
          + " ".join(f"{k}={v}" for k, v in fields.items()))


if __name__ == "__main__":
    main()
