"""--model-kwargs: extra from_pretrained options, an allow-list with types (ADR 0025).

llem renders them from backends[].pytorch.modelKwargs (already validated there); the server checks again, so a
hand-written command line cannot pass an option llem does not know (trust_remote_code included: it is False
unless the JSON says true).
"""

from __future__ import annotations

import json
import os
from typing import Any

ROPE_TYPES = ("linear", "dynamic", "yarn", "llama3", "longrope")
_ROPE_KEYS: dict[str, type | tuple[type, ...]] = {
    "rope_type": str, "factor": (int, float), "original_max_position_embeddings": int,
    "low_freq_factor": (int, float), "high_freq_factor": (int, float),
}
# key -> type; bnb_* go into BitsAndBytesConfig, the rest into from_pretrained.
ALLOWED: dict[str, type | tuple[type, ...]] = {
    "trust_remote_code": bool, "code_revision": str, "low_cpu_mem_usage": bool, "use_safetensors": bool,
    "subfolder": str, "rope_scaling": dict, "bnb_4bit_quant_type": str, "bnb_4bit_use_double_quant": bool,
}
BNB_KEYS = ("bnb_4bit_quant_type", "bnb_4bit_use_double_quant")


class ModelKwargsError(ValueError):
    """A --model-kwargs value the server refuses; the message names the key."""


def _check_type(key: str, value: Any, expected: type | tuple[type, ...]) -> None:
    # bool is an int in Python: a number where a flag is expected (or the reverse) is refused.
    if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
        raise ModelKwargsError(f"--model-kwargs: {key} has the wrong type ({type(value).__name__})")


def parse_model_kwargs(text: str | None) -> dict[str, Any]:
    if text is None or text == "":
        return {}
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ModelKwargsError(f"--model-kwargs: not JSON ({err})") from err
    if not isinstance(raw, dict):
        raise ModelKwargsError("--model-kwargs: must be a JSON object")
    for key, value in raw.items():
        if key not in ALLOWED:
            raise ModelKwargsError(f"--model-kwargs: {key} is not an allowed option ({', '.join(sorted(ALLOWED))})")
        _check_type(key, value, ALLOWED[key])
    rope = raw.get("rope_scaling")
    if rope is not None:
        for key, value in rope.items():
            if key not in _ROPE_KEYS:
                raise ModelKwargsError(f"--model-kwargs: rope_scaling.{key} is not an allowed option")
            _check_type(f"rope_scaling.{key}", value, _ROPE_KEYS[key])
        if rope.get("rope_type") not in ROPE_TYPES or "factor" not in rope:
            raise ModelKwargsError(f"--model-kwargs: rope_scaling needs rope_type ({', '.join(ROPE_TYPES)}) and factor")
    if raw.get("bnb_4bit_quant_type", "nf4") not in ("nf4", "fp4"):
        raise ModelKwargsError("--model-kwargs: bnb_4bit_quant_type must be nf4 or fp4")
    return raw


def loading_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """from_pretrained options: trust_remote_code always explicit (False unless enabled), no bnb_* keys."""
    out = {k: v for k, v in kwargs.items() if k not in BNB_KEYS}
    out["trust_remote_code"] = kwargs.get("trust_remote_code") is True
    return out


def tokenizer_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """What the tokenizer shares with the model: remote code (and its pinned revision), the subfolder."""
    out: dict[str, Any] = {"trust_remote_code": kwargs.get("trust_remote_code") is True}
    for key in ("code_revision", "subfolder"):
        if key in kwargs:
            out[key] = kwargs[key]
    return out


def bnb_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {k: kwargs[k] for k in BNB_KEYS if k in kwargs}


def hub_token() -> str | None:
    """HF_TOKEN_PATH (a mounted Secret file; llem never puts the value in the environment), else HF_TOKEN."""
    path = os.environ.get("HF_TOKEN_PATH")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                return f.read().strip() or None
        except OSError:
            return None
    return os.environ.get("HF_TOKEN") or None
