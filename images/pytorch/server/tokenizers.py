"""Tokenizers that need no download: random-weight models have no tokenizer on any hub.

WordTokenizer maps each whitespace-separated word to one token id (a stable hash), so a prompt of N
words is exactly N prompt tokens: synthetic workloads of N "tokens" mean what they say. Decoding
renders id k as the word "t<k>" followed by a space.
"""

from __future__ import annotations

import zlib
from typing import Any

PAD_ID = 0
BOS_ID = 1
EOS_ID = 2
FIRST_WORD_ID = 3


class WordTokenizer:
    def __init__(self, vocab_size: int) -> None:
        if vocab_size <= FIRST_WORD_ID:
            raise ValueError(f"vocab size must exceed {FIRST_WORD_ID}, got {vocab_size}")
        self.vocab_size = vocab_size
        self.eos_token_id: int | None = EOS_ID
        self.pad_token_id = PAD_ID

    def _word_id(self, word: str) -> int:
        if word.startswith("t") and word[1:].isdigit():
            value = int(word[1:])
            if FIRST_WORD_ID <= value < self.vocab_size:
                return value
        span = self.vocab_size - FIRST_WORD_ID
        return FIRST_WORD_ID + zlib.crc32(word.encode("utf-8")) % span

    def encode(self, text: str) -> list[int]:
        return [self._word_id(w) for w in text.split()]

    def decode(self, ids: list[int]) -> str:
        return "".join(f"t{i} " for i in ids if i >= FIRST_WORD_ID)

    def chat_prompt(self, messages: list[dict[str, Any]]) -> list[int]:
        ids: list[int] = [BOS_ID]
        for m in messages:
            ids.extend(self.encode(f"{m.get('role', 'user')}: {_content_text(m.get('content'))}"))
        ids.extend(self.encode("assistant:"))
        return ids


class HfTokenizer:
    """Adapter over a transformers tokenizer."""

    def __init__(self, tok: Any) -> None:
        self._tok = tok
        self.eos_token_id: int | None = tok.eos_token_id

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=True))

    def decode(self, ids: list[int]) -> str:
        return str(self._tok.decode(ids, skip_special_tokens=True))

    def chat_prompt(self, messages: list[dict[str, Any]]) -> list[int]:
        plain = [{"role": m.get("role", "user"), "content": _content_text(m.get("content"))} for m in messages]
        if getattr(self._tok, "chat_template", None):
            text = self._tok.apply_chat_template(plain, tokenize=False, add_generation_prompt=True)
            return list(self._tok.encode(text, add_special_tokens=False))
        joined = "\n".join(f"{m['role']}: {m['content']}" for m in plain) + "\nassistant:"
        return self.encode(joined)


def _content_text(content: Any) -> str:
    """OpenAI chat content is a string or a list of parts; only text parts are used."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


class IncrementalDetokenizer:
    """Turns a growing list of ids into text deltas without splitting multi-byte characters (TGI's method)."""

    def __init__(self, tokenizer: Any) -> None:
        self._tok = tokenizer
        self._ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def push(self, token_id: int) -> str:
        self._ids.append(token_id)
        prefix_text = self._tok.decode(self._ids[self._prefix:self._read])
        new_text = self._tok.decode(self._ids[self._prefix:])
        if len(new_text) > len(prefix_text) and not new_text.endswith("\ufffd"):
            self._prefix = self._read
            self._read = len(self._ids)
            return new_text[len(prefix_text):]
        return ""
