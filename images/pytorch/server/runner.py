"""The model behind the server: a tokenizer and a batch runner, as small interfaces.

The engine owns the order of the running batch: row i of the runner's state is always the engine's
i-th running sequence. `prefill` appends rows, `decode` advances every row by one token, `keep`
drops rows. Implementations: torch_runner.TorchRunner (transformers) and fake.FakeRunner (tests).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Sampling:
    max_tokens: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    ignore_eos: bool = False
    min_tokens: int = 0
    seed: int | None = None


@dataclass
class Sequence:
    """One request's generation state, shared by the engine thread and the HTTP handler."""

    request_id: str
    prompt_ids: list[int]
    sampling: Sampling
    output_ids: list[int] = field(default_factory=list)
    # The last sampled token, not yet fed to the model (its KV entry does not exist yet).
    pending: int | None = None
    finish_reason: str | None = None
    cancelled: bool = False
    # Set by the engine: callback(token_id | None, finish_reason | None), run on the event loop.
    sink: Any = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None


class Tokenizer(Protocol):
    eos_token_id: int | None

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: list[int]) -> str: ...

    def chat_prompt(self, messages: list[dict[str, Any]]) -> list[int]: ...


class BatchRunner(Protocol):
    max_model_len: int

    def prefill(self, seqs: list[Sequence]) -> list[int]:
        """Append rows for `seqs` (prompts only) and return the first sampled token of each."""

    def decode(self, seqs: list[Sequence]) -> list[int]:
        """Feed every row's pending token; return the next sampled token of each row."""

    def keep(self, indices: list[int]) -> None:
        """Keep only these rows (in this order); drop the rest and free their cache."""

    def reset(self) -> None:
        """Drop every row."""

    def memory_stats(self) -> dict[str, Any]: ...

    def close(self) -> None:
        """Free the model and every device allocation (SIGTERM path)."""
