"""Decode steps replayed as CUDA graphs over a static KV cache (--cuda-graphs; ADR 0009).

The eager runner (torch_runner.TorchRunner) launches every kernel of every decode step from Python:
with a small model the GPU waits for the host, so a decode step takes as long as the host's Python
does, and the energy per token follows the host's speed rather than the GPU's work. This runner replaces both
steps with a leaner path through the model's own modules:

- The KV cache is static: per layer, [max_batch_size, kv_heads, max_model_len, head_dim], allocated
  once, with a [max_batch_size, max_model_len] mask of valid columns. Rows are right-aligned at one
  shared write column (as the eager runner's left-padded cache is), so a step writes every row's new
  key and value at the same column; positions are per row.
- One decode step (embedding, every layer, final norm, LM head) is captured as a CUDA graph per
  (batch bucket, width bucket) at start-up and replayed: the host launches one graph per step.
  Rows are padded up to the batch bucket (their outputs are ignored); attention reads the first
  `width bucket` columns only.
- Prefill (prompt lengths vary, so it is not captured) runs the same layers eagerly and writes the
  prompts' keys and values straight into new rows (shifting the batch right when a new prompt is
  longer than the write column); attention there follows --attn-implementation (eager: written
  out; otherwise PyTorch SDPA). Retirement compacts rows and shifts out all-padding columns.

Both steps use the model's own modules (projections, norms, MLP, rotary table) with attention
written out, so they compute what the eager runner computes: tests compare the two step by step. On
CPU (tests) the same step runs without graphs. Supports the Llama-family layouts: llama, mistral,
qwen2 (projection biases are the modules' own).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F

from .config import ServerConfig
from .runner import Sequence
from .torch_runner import TorchRunner, left_padded

log = logging.getLogger("llem.server.graphs")

GRAPH_ARCHITECTURES = ("llama", "mistral", "qwen2")
# Rotary variants whose frequencies do not depend on the sequence length: one table serves every step.
STATIC_ROPE_TYPES = ("default", "linear", "llama3", "yarn")
_MIN_WIDTH = 128


def _buckets(limit: int, first: int, grow: Any) -> list[int]:
    out, value = [], first
    while value < limit:
        out.append(value)
        value = grow(value)
    out.append(limit)
    return out


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class GraphRunner(TorchRunner):
    def __init__(self, cfg: ServerConfig) -> None:
        super().__init__(cfg)
        conf = self.model.config
        model_type = getattr(conf, "model_type", "")
        if model_type not in GRAPH_ARCHITECTURES:
            raise ValueError(f"--cuda-graphs supports the {', '.join(GRAPH_ARCHITECTURES)} architectures; "
                             f"this model is {model_type!r}: run it without --cuda-graphs")
        if cfg.quantization != "none":
            raise ValueError("--cuda-graphs needs an unquantised model: use --quantization none or drop --cuda-graphs")
        if cfg.compile:
            raise ValueError("--cuda-graphs and --compile are alternatives: use one of them")
        self._check_supported(conf)
        self.use_graphs = self.device.type == "cuda"
        self._setup_static()
        self._graphs: dict[tuple[int, int], Any] = {}
        if self.use_graphs:
            self._capture_all()

    def _check_supported(self, conf: Any) -> None:
        """Refuse what the static step does not compute like the model would (it would run, wrongly)."""
        window = getattr(conf, "sliding_window", None)
        sliding = window is not None and window < self.max_model_len
        if sliding or "sliding_attention" in (getattr(conf, "layer_types", None) or []):
            raise ValueError(f"--cuda-graphs does not implement sliding-window attention (sliding_window {window}, "
                             f"max_model_len {self.max_model_len}): set --max-model-len <= {window} or drop --cuda-graphs")
        rope = getattr(self.model.model.rotary_emb, "rope_type", "default")
        if rope not in STATIC_ROPE_TYPES:
            raise ValueError(f"--cuda-graphs supports rotary types {', '.join(STATIC_ROPE_TYPES)}; this model's is "
                             f"{rope!r} (its frequencies depend on the sequence length): drop --cuda-graphs")

    # ---------------------------------------------------------------- static state

    @torch.inference_mode()
    def _setup_static(self) -> None:
        conf = self.model.config
        inner = self.model.model
        self._layers = list(inner.layers)
        attn = self._layers[0].self_attn
        self._head_dim = int(attn.head_dim)
        self._heads = int(conf.num_attention_heads)
        self._kv_heads = int(conf.num_key_value_heads)
        self._scaling = float(attn.scaling)
        dtype = next(self.model.parameters()).dtype
        self._dtype = dtype
        self.capacity = self.cfg.max_batch_size
        self.width = self.max_model_len
        shape = (self.capacity, self._kv_heads, self.width, self._head_dim)
        per_layer = 2 * shape[0] * shape[1] * shape[2] * shape[3] * torch.finfo(dtype).bits // 8
        log.info("static KV cache: %d rows x %d columns, %.1f MiB", self.capacity, self.width,
                 per_layer * len(self._layers) / 2**20)
        self._k = [torch.zeros(shape, dtype=dtype, device=self.device) for _ in self._layers]
        self._v = [torch.zeros(shape, dtype=dtype, device=self.device) for _ in self._layers]
        self._valid = torch.zeros((self.capacity, self.width), dtype=torch.bool, device=self.device)
        # Rotary table for every position, computed by the model's own rotary module.
        positions = torch.arange(self.width, device=self.device)[None, :]
        probe = torch.zeros((1, 1), dtype=dtype, device=self.device)
        cos, sin = inner.rotary_emb(probe, positions)
        self._cos, self._sin = cos[0].contiguous(), sin[0].contiguous()
        # Graph inputs and output: fixed addresses, rewritten before every replay.
        self._ids = torch.zeros(self.capacity, dtype=torch.long, device=self.device)
        self._pos = torch.zeros(self.capacity, dtype=torch.long, device=self.device)
        self._col = torch.zeros(1, dtype=torch.long, device=self.device)
        self._logits = torch.zeros((self.capacity, int(conf.vocab_size)), dtype=dtype, device=self.device)
        self._rows = 0
        self._write = 0  # the column the next decode step writes
        self._lengths = []
        self.batch_buckets = _buckets(self.capacity, 1, lambda b: b * 2 if b < 8 else b + 8)
        self.width_buckets = _buckets(self.width, min(_MIN_WIDTH, self.width), lambda w: w * 2)

    def _qkv(self, layer: Any, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """One layer's queries, keys and values for x [n, t, hidden]: [n, heads, t, d], rotary applied."""
        n, t = x.shape[0], x.shape[1]
        attn = layer.self_attn
        h = layer.input_layernorm(x)
        q = attn.q_proj(h).view(n, t, self._heads, self._head_dim).transpose(1, 2)
        k = attn.k_proj(h).view(n, t, self._kv_heads, self._head_dim).transpose(1, 2)
        v = attn.v_proj(h).view(n, t, self._kv_heads, self._head_dim).transpose(1, 2)
        return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin, v

    def _step(self, rows: int, width: int) -> None:
        """One decode step for the first `rows` rows, attending to the first `width` columns."""
        inner = self.model.model
        self._valid[:rows].index_fill_(1, self._col, True)
        keep = self._valid[:rows, None, None, :width]  # [b, 1, 1, w]
        ids, pos = self._ids[:rows], self._pos[:rows]
        cos = self._cos.index_select(0, pos)[:, None, None, :]  # [b, 1, 1, d]
        sin = self._sin.index_select(0, pos)[:, None, None, :]
        x = inner.embed_tokens(ids)[:, None, :]  # [b, 1, hidden]
        group = self._heads // self._kv_heads
        low = torch.finfo(self._dtype).min
        for i, layer in enumerate(self._layers):
            attn = layer.self_attn
            q, k, v = self._qkv(layer, x, cos, sin)
            kc, vc = self._k[i][:rows], self._v[i][:rows]
            kc.index_copy_(2, self._col, k)
            vc.index_copy_(2, self._col, v)
            # Eager attention, grouped: [b, kv, group, d] x [b, kv, w, d] -> [b, kv, group, w].
            qg = q.reshape(rows, self._kv_heads, group, self._head_dim)
            scores = torch.matmul(qg, kc[:, :, :width].transpose(2, 3)) * self._scaling
            scores = scores.masked_fill(~keep, low)
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(self._dtype)
            out = torch.matmul(probs, vc[:, :, :width]).reshape(rows, 1, self._heads * self._head_dim)
            x = x + attn.o_proj(out)
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        x = inner.norm(x)
        self._logits[:rows].copy_(self.model.lm_head(x[:, 0, :]))

    @torch.inference_mode()
    def _capture_all(self) -> None:
        pool = None
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):  # warm up kernels (and cuBLAS workspaces) outside any graph
            for rows in self.batch_buckets:
                self._step(rows, self.width_buckets[0])
        torch.cuda.current_stream(self.device).wait_stream(stream)
        for width in reversed(self.width_buckets):  # the largest first: its pool serves the rest
            for rows in reversed(self.batch_buckets):
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    self._step(rows, width)
                pool = graph.pool()
                self._graphs[(rows, width)] = graph
        torch.cuda.synchronize(self.device)
        self._valid.zero_()
        log.info("captured %d decode graphs: batch buckets %s, width buckets %s", len(self._graphs),
                 self.batch_buckets, self.width_buckets)

    # ---------------------------------------------------------------- batch

    @torch.inference_mode()
    def prefill(self, seqs: list[Sequence]) -> list[int]:
        """Prompts straight into new rows of the static cache (eager: prompt lengths vary)."""
        m = len(seqs)
        if self._rows + m > self.capacity:
            raise RuntimeError(f"batch of {self._rows + m} rows exceeds max_batch_size {self.capacity}")
        ids, valid = left_padded(seqs, self.device)
        t = ids.shape[1]
        if t > self._write:
            self._shift(t - self._write)
        start, end, col = self._rows, self._rows + m, self._write
        self._valid[start:end].zero_()
        self._valid[start:end, col - t:col] = valid
        positions = (valid.long().cumsum(-1) - 1).clamp(min=0)
        cos, sin = self._cos[positions][:, None], self._sin[positions][:, None]  # [m, 1, t, d]
        # Causal over real tokens; a padding position sees itself only (no row is fully masked).
        causal = torch.ones((t, t), dtype=torch.bool, device=self.device).tril()
        allowed = (causal[None] & valid[:, None, :]) | torch.eye(t, dtype=torch.bool, device=self.device)[None]
        inner = self.model.model
        x = inner.embed_tokens(ids)  # [m, t, hidden]
        group = self._heads // self._kv_heads
        low = torch.finfo(self._dtype).min
        for i, layer in enumerate(self._layers):
            attn = layer.self_attn
            q, k, v = self._qkv(layer, x, cos, sin)
            self._k[i][start:end, :, col - t:col] = k
            self._v[i][start:end, :, col - t:col] = v
            if self.cfg.attn_implementation == "eager":
                qg = q.reshape(m, self._kv_heads, group, t, self._head_dim)
                scores = torch.matmul(qg, k[:, :, None].transpose(3, 4)) * self._scaling
                scores = scores.masked_fill(~allowed[:, None, None], low)
                probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(self._dtype)
                out = torch.matmul(probs, v[:, :, None]).reshape(m, self._heads, t, self._head_dim)
            else:
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None], scale=self._scaling,
                                                     enable_gqa=True)
            x = x + attn.o_proj(out.transpose(1, 2).reshape(m, t, self._heads * self._head_dim))
            x = x + layer.mlp(layer.post_attention_layernorm(x))
        logits = self.model.lm_head(inner.norm(x[:, -1, :]))
        self._rows = end
        self._lengths = self._lengths + [len(s.prompt_ids) for s in seqs]
        return self._sample(logits, seqs)

    @torch.inference_mode()
    def decode(self, seqs: list[Sequence]) -> list[int]:
        rows = self._rows
        assert rows == len(seqs) and rows > 0
        if self._write >= self.width:
            self._retire_finished_columns(seqs)
            if self._write >= self.width:
                raise RuntimeError(f"a row is longer than max_model_len {self.width}")
        bucket = next(b for b in self.batch_buckets if b >= rows)
        width = next(w for w in self.width_buckets if w > self._write)
        self._ids[:rows].copy_(torch.tensor([s.pending for s in seqs], dtype=torch.long))
        self._pos[:rows].copy_(torch.tensor(self._lengths, dtype=torch.long))
        self._col.fill_(self._write)
        graph = self._graphs.get((bucket, width))
        if graph is not None:
            graph.replay()
        else:
            self._step(bucket, width)
        self._write += 1
        self._lengths = [n + 1 for n in self._lengths]
        return self._sample(self._logits[:rows], seqs)

    @torch.inference_mode()
    def keep(self, indices: list[int]) -> None:
        if not indices:
            self.reset()
            return
        index = torch.tensor(indices, dtype=torch.long, device=self.device)
        rows, w = len(indices), self._write
        # Only the columns in use move: the rest of the static width holds nothing valid.
        self._valid[:rows] = self._valid.index_select(0, index)
        for k, v in zip(self._k, self._v):
            k[:rows, :, :w] = k[:, :, :w].index_select(0, index)
            v[:rows, :, :w] = v[:, :, :w].index_select(0, index)
        self._rows = rows
        self._lengths = [self._lengths[i] for i in indices]
        self._trim()

    def reset(self) -> None:
        super().reset()
        self._rows, self._write = 0, 0

    # ---------------------------------------------------------------- columns

    def _shift(self, by: int) -> None:
        """Move every row's columns right by `by` (a longer prompt arrives); the write column follows."""
        if by <= 0:
            return
        end = self._write + by
        if end > self.width:
            raise RuntimeError(f"a prompt of {end} columns exceeds max_model_len {self.width}")
        rows, w = self._rows, self._write
        if rows and w:
            self._valid[:rows, by:end] = self._valid[:rows, :w].clone()
            for k, v in zip(self._k, self._v):
                k[:rows, :, by:end] = k[:rows, :, :w].clone()
                v[:rows, :, by:end] = v[:rows, :, :w].clone()
        self._valid[:rows, :by] = False
        self._write = end

    def _retire_finished_columns(self, seqs: list[Sequence]) -> None:
        """Static batching keeps finished rows in the batch (their output is dropped) until the whole
        batch is done; when the columns run out, those rows give up theirs so the others can go on."""
        for i, s in enumerate(seqs):
            if s.finished:
                self._valid[i].zero_()
                self._lengths[i] = 0
        self._trim()

    def _trim(self) -> None:
        """Drop leading columns that are padding in every row, so attention reads fewer columns."""
        rows, w = self._rows, self._write
        if rows == 0 or w == 0:
            return
        first = int(self._valid[:rows, :w].any(dim=0).to(torch.int8).argmax().item())
        if first == 0:
            return
        left = w - first
        self._valid[:rows, :left] = self._valid[:rows, first:w].clone()
        self._valid[:rows, left:w] = False  # columns at and after the write column are never valid
        for k, v in zip(self._k, self._v):
            k[:rows, :, :left] = k[:rows, :, first:w].clone()
            v[:rows, :, :left] = v[:rows, :, first:w].clone()
        self._write = left

    def close(self) -> None:
        self._graphs.clear()
        self._k, self._v = [], []
        for name in ("_valid", "_cos", "_sin", "_ids", "_pos", "_col", "_logits"):
            setattr(self, name, None)
        super().close()
