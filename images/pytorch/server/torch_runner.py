"""The transformers runner: one padded KV cache holds every running sequence.

Rows are left-padded: a 2-D attention mask marks real tokens, and position ids are given per row, so
sequences of different lengths decode together. New sequences are prefilled as their own batch and
their cache is merged in (both sides left-padded to the longer one); finished rows are dropped with
index_select and all-padding columns on the left are trimmed. Only DynamicCache's public update()
and its per-layer tensors are used, so this works across transformers 4.5x and 5.x.
"""

from __future__ import annotations

import gc
import logging
import resource
import tempfile
import time
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM, DynamicCache

from .config import ServerConfig
from .model_kwargs import bnb_kwargs, hub_token, loading_kwargs, tokenizer_kwargs
from .runner import Sequence
from .tokenizers import EOS_ID, PAD_ID, BOS_ID, HfTokenizer, WordTokenizer

log = logging.getLogger("llem.server.torch")

_TF_MAJOR = int(transformers.__version__.split(".")[0])
_DTYPE_KW = "dtype" if _TF_MAJOR >= 5 else "torch_dtype"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        # Memory statistics and set_device need an index; the process sees only its own GPUs.
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def resolve_dtype(name: str, device: torch.device, source: str) -> torch.dtype | str:
    if name != "auto":
        return getattr(torch, name)
    if source != "random":
        return "auto"  # the checkpoint's own dtype
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def _kv_of(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if hasattr(cache, "layers"):
        return [(layer.keys, layer.values) for layer in cache.layers]
    return list(zip(cache.key_cache, cache.value_cache))


def _cache_from(kv: list[tuple[torch.Tensor, torch.Tensor]]) -> Any:
    cache = DynamicCache()
    for i, (k, v) in enumerate(kv):
        cache.update(k, v, i)
    return cache


def left_padded(seqs: list[Sequence], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The prompts as one left-padded [rows, longest] batch of ids, and the mask of real tokens (bool)."""
    width = max(len(s.prompt_ids) for s in seqs)
    ids = torch.full((len(seqs), width), PAD_ID, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.bool)
    for i, s in enumerate(seqs):
        ids[i, width - len(s.prompt_ids):] = torch.tensor(s.prompt_ids, dtype=torch.long)
        mask[i, width - len(s.prompt_ids):] = True
    return ids.to(device), mask.to(device)


def _left_pad(t: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    missing = width - t.shape[dim]
    if missing == 0:
        return t
    shape = list(t.shape)
    shape[dim] = missing
    return torch.cat([t.new_zeros(shape), t], dim=dim)


class TorchRunner:
    def __init__(self, cfg: ServerConfig, device: str | None = None) -> None:
        self.cfg = cfg
        # A tensor-parallel rank is given its own device (tensor_parallel.rank_device).
        self.device = resolve_device(device or cfg.device)
        self.dtype = resolve_dtype(cfg.dtype, self.device, cfg.source)
        torch.manual_seed(cfg.seed)
        self._generator = torch.Generator(device=self.device).manual_seed(cfg.seed)
        self._mem: dict[str, Any] = {"device": str(self.device)}
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        started = time.monotonic()
        self.model, self.tokenizer = self._load()
        self.model.eval()
        # The whole model's size, also on a tensor-parallel rank that keeps only its share.
        self.parameters = sum(p.numel() for p in self.model.parameters())
        if cfg.tensor_parallel_size > 1:
            from .tensor_parallel import shard_model

            shard_model(self.model, cfg.tp_rank, cfg.tensor_parallel_size)
        # What this process holds: a rank's share under tensor parallelism, else the whole model.
        self.shard_parameters = sum(p.numel() for p in self.model.parameters())
        if cfg.compile:
            self.model.forward = torch.compile(self.model.forward, dynamic=True)
        self._record_load_memory(time.monotonic() - started)
        conf = self.model.config
        self.max_model_len = cfg.max_model_len or int(getattr(conf, "max_position_embeddings", 0) or 4096)
        self._cache: Any = None
        self._mask: torch.Tensor | None = None
        self._lengths: list[int] = []

    # ---------------------------------------------------------------- loading

    def _load(self) -> tuple[Any, Any]:
        cfg = self.cfg
        common: dict[str, Any] = {_DTYPE_KW: self.dtype, "attn_implementation": cfg.attn_implementation}
        if cfg.source == "random":
            conf = self._random_config()
            if "rope_scaling" in cfg.model_kwargs:
                rope = dict(cfg.model_kwargs["rope_scaling"])
                # transformers 5 keeps rope_theta in the same dict (rope_parameters): merge, never drop it.
                now = getattr(conf, "rope_parameters", None)
                conf.rope_scaling = {**now, **rope} if isinstance(now, dict) else rope
            if cfg.quantization != "none":
                return self._load_random_quantized(conf, common), WordTokenizer(cfg.random.vocab_size)
            with torch.device(self.device):
                model = AutoModelForCausalLM.from_config(conf, **common)
            return model, WordTokenizer(cfg.random.vocab_size)
        where = cfg.path if cfg.source == "path" else cfg.model
        hub: dict[str, Any] = {"revision": cfg.revision} if cfg.source == "huggingface" else {"local_files_only": True}
        token = hub_token()
        if token is not None and cfg.source == "huggingface":
            hub["token"] = token
        extra = loading_kwargs(cfg.model_kwargs)
        model = AutoModelForCausalLM.from_pretrained(where, **common, **hub, **extra, **self._placement())
        if cfg.quantization == "none" and next(model.parameters()).device != self.device:
            model = model.to(self.device)
        tok = transformers.AutoTokenizer.from_pretrained(where, **hub, **tokenizer_kwargs(cfg.model_kwargs))
        return model, HfTokenizer(tok)

    def _random_config(self) -> Any:
        r = self.cfg.random
        extra: dict[str, Any] = {"sliding_window": None} if r.architecture == "mistral" else {}
        return AutoConfig.for_model(
            r.architecture, hidden_size=r.hidden_size, num_hidden_layers=r.num_layers,
            num_attention_heads=r.num_heads, num_key_value_heads=r.num_kv_heads,
            intermediate_size=r.intermediate_size, vocab_size=r.vocab_size,
            max_position_embeddings=r.max_position_embeddings, bos_token_id=BOS_ID, eos_token_id=EOS_ID,
            pad_token_id=PAD_ID, tie_word_embeddings=False, **extra,
        )

    def _placement(self) -> dict[str, Any]:
        if self.cfg.quantization == "none":
            return {}
        return {"quantization_config": self._bnb_config(), "device_map": {"": str(self.device)}}

    def _bnb_config(self) -> Any:
        if self.device.type != "cuda":
            raise ValueError("bitsandbytes quantisation needs a CUDA device")
        compute = self.dtype if isinstance(self.dtype, torch.dtype) else torch.bfloat16
        if self.cfg.quantization == "bitsandbytes4bit":
            return transformers.BitsAndBytesConfig(
                load_in_4bit=True, bnb_4bit_compute_dtype=compute, **bnb_kwargs(self.cfg.model_kwargs))
        return transformers.BitsAndBytesConfig(load_in_8bit=True)

    def _load_random_quantized(self, conf: Any, common: dict[str, Any]) -> Any:
        # bitsandbytes quantises while loading a checkpoint: write the random weights once, then load them.
        model = AutoModelForCausalLM.from_config(conf, **common)
        with tempfile.TemporaryDirectory(prefix="llem-random-") as tmp:
            model.save_pretrained(tmp)
            del model
            gc.collect()
            return AutoModelForCausalLM.from_pretrained(tmp, **common, **self._placement())

    # ---------------------------------------------------------------- memory

    def _record_load_memory(self, seconds: float) -> None:
        self._mem["loadSeconds"] = round(seconds, 3)
        if self.device.type == "cuda":
            self._mem["loadPeakBytes"] = torch.cuda.max_memory_allocated(self.device)
            self._mem["allocatedAfterLoadBytes"] = torch.cuda.memory_allocated(self.device)
            self._mem["reservedAfterLoadBytes"] = torch.cuda.memory_reserved(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        else:
            self._mem["loadPeakBytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self._mem["allocatedAfterLoadBytes"] = None
            self._mem["reservedAfterLoadBytes"] = None
        log.info("model loaded: %s", {k: v for k, v in self._mem.items()})

    def memory_stats(self) -> dict[str, Any]:
        out = dict(self._mem)
        if self.device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(self.device)
            out["inferencePeakBytes"] = peak
            after = out.get("allocatedAfterLoadBytes")
            out["inferencePeakAboveLoadBytes"] = peak - after if isinstance(after, int) else None
            out["inferencePeakReservedBytes"] = torch.cuda.max_memory_reserved(self.device)
            free, total = torch.cuda.mem_get_info(self.device)
            out["deviceUsedBytes"] = total - free
            out["deviceTotalBytes"] = total
        else:
            # ru_maxrss is the process's lifetime peak: on CPU it cannot be split at the end of loading.
            out["inferencePeakBytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            out["reason"] = "cpu: peak resident set size of the whole process"
        return out

    # ---------------------------------------------------------------- batch

    @torch.inference_mode()
    def prefill(self, seqs: list[Sequence]) -> list[int]:
        ids, real = left_padded(seqs, self.device)
        mask = real.long()
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache,
                         use_cache=True, logits_to_keep=1)
        tokens = self._sample(out.logits[:, -1, :], seqs)
        self._merge(_kv_of(out.past_key_values), mask, [len(s.prompt_ids) for s in seqs])
        return tokens

    @torch.inference_mode()
    def decode(self, seqs: list[Sequence]) -> list[int]:
        assert self._mask is not None and len(seqs) == self._mask.shape[0]
        ids = torch.tensor([[s.pending] for s in seqs], dtype=torch.long, device=self.device)
        positions = torch.tensor([[n] for n in self._lengths], dtype=torch.long, device=self.device)
        mask = torch.cat([self._mask, self._mask.new_ones((len(seqs), 1))], dim=1)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         past_key_values=self._cache, use_cache=True, logits_to_keep=1)
        self._cache = out.past_key_values
        self._mask = mask
        self._lengths = [n + 1 for n in self._lengths]
        return self._sample(out.logits[:, -1, :], seqs)

    def _merge(self, kv_new: list[tuple[torch.Tensor, torch.Tensor]], mask_new: torch.Tensor,
               lengths: list[int]) -> None:
        if self._cache is None or self._mask is None:
            self._cache, self._mask, self._lengths = _cache_from(kv_new), mask_new, lengths
            return
        width = max(self._mask.shape[1], mask_new.shape[1])
        kv_old = _kv_of(self._cache)
        merged = [
            (torch.cat([_left_pad(ko, width, 2), _left_pad(kn, width, 2)], 0),
             torch.cat([_left_pad(vo, width, 2), _left_pad(vn, width, 2)], 0))
            for (ko, vo), (kn, vn) in zip(kv_old, kv_new)
        ]
        self._mask = torch.cat([_left_pad(self._mask, width, 1), _left_pad(mask_new, width, 1)], 0)
        self._cache = _cache_from(merged)
        self._lengths = self._lengths + lengths

    def keep(self, indices: list[int]) -> None:
        if not indices:
            self.reset()
            return
        assert self._mask is not None
        index = torch.tensor(indices, dtype=torch.long, device=self.device)
        mask = self._mask.index_select(0, index)
        # Trim columns that are padding in every remaining row (the rows that needed them are gone).
        first = int(mask.any(dim=0).to(torch.int8).argmax().item())
        self._mask = mask[:, first:]
        self._cache = _cache_from([(k.index_select(0, index)[:, :, first:, :], v.index_select(0, index)[:, :, first:, :])
                                   for k, v in _kv_of(self._cache)])
        self._lengths = [self._lengths[i] for i in indices]

    def reset(self) -> None:
        self._cache, self._mask, self._lengths = None, None, []

    def _sample(self, logits: torch.Tensor, seqs: list[Sequence]) -> list[int]:
        logits = logits.float()
        out = logits.argmax(dim=-1)
        rows = [i for i, s in enumerate(seqs) if s.sampling.temperature > 0]
        if rows:
            index = torch.tensor(rows, device=logits.device)
            temps = torch.tensor([seqs[i].sampling.temperature for i in rows], device=logits.device)
            probs = torch.softmax(logits.index_select(0, index) / temps[:, None], dim=-1)
            top_p = torch.tensor([seqs[i].sampling.top_p for i in rows], device=logits.device)
            if bool((top_p < 1).any()):
                sorted_p, order = probs.sort(dim=-1, descending=True)
                drop = sorted_p.cumsum(-1) - sorted_p > top_p[:, None]
                sorted_p = sorted_p.masked_fill(drop, 0.0)
                probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
            picked = torch.multinomial(probs, 1, generator=self._generator).squeeze(-1)
            out[index] = picked
        return [int(t) for t in out.tolist()]

    # ---------------------------------------------------------------- shutdown

    def close(self) -> None:
        self.reset()
        self.model = None
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.empty_cache()
            log.info("gpu memory after close: allocated=%d reserved=%d", torch.cuda.memory_allocated(self.device),
                     torch.cuda.memory_reserved(self.device))
