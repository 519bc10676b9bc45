"""OpenAI-compatible routes: /v1/completions, /v1/chat/completions, /v1/models, /health, /stats."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any, AsyncIterator

from .engine import Engine
from .httpd import HttpError, Request, Response, StreamResponse, error_response, json_response
from .runner import BatchRunner, Sampling, Sequence, Tokenizer
from .tokenizers import IncrementalDetokenizer

Event = tuple[int | None, str | None]


class OpenAIApp:
    def __init__(self, name: str, tokenizer: Tokenizer, runner: BatchRunner, *, batching: str,
                 max_batch_size: int, batch_wait_ms: float, info: dict[str, Any]) -> None:
        self.name = name
        self.tokenizer = tokenizer
        self.runner = runner
        self.info = info
        self.created = int(time.time())
        self.ready = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.engine = Engine(runner, tokenizer.eos_token_id, batching=batching, max_batch_size=max_batch_size,
                             batch_wait_ms=batch_wait_ms, emit=self._emit_threadsafe)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.engine.start()
        self.ready = True

    def _emit_threadsafe(self, events: list[tuple[Sequence, int | None, str | None]]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(_dispatch, events)
        except RuntimeError:  # loop closed while shutting down
            pass

    # ---------------------------------------------------------------- routing

    async def handle(self, req: Request) -> Response | StreamResponse:
        route = (req.method, req.path.rstrip("/") or "/")
        if route == ("GET", "/health"):
            return self._health()
        if route == ("GET", "/v1/models"):
            return json_response({"object": "list", "data": [self._model_card()]})
        if route == ("GET", "/stats"):
            return json_response(self.stats())
        if route == ("POST", "/v1/completions"):
            return await self._generate(req, chat=False)
        if route == ("POST", "/v1/chat/completions"):
            return await self._generate(req, chat=True)
        known = {"/health", "/v1/models", "/stats", "/v1/completions", "/v1/chat/completions"}
        if route[1] in known:
            return error_response(405, f"{req.method} not allowed on {req.path}")
        return error_response(404, f"no route {req.path}")

    def _health(self) -> Response:
        if self.engine.error is not None:
            return json_response({"status": "error", "error": str(self.engine.error)}, 503)
        return json_response({"status": "ok"} if self.ready else {"status": "loading"}, 200 if self.ready else 503)

    def _model_card(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "llem",
                "max_model_len": self.runner.max_model_len, "llem": self.stats()}

    def stats(self) -> dict[str, Any]:
        return {**self.info, "memory": self.runner.memory_stats(), "engine": self.engine.counters.as_dict(),
                "load": self.engine.load()}

    # ---------------------------------------------------------------- generation

    async def _generate(self, req: Request, chat: bool) -> Response | StreamResponse:
        if not self.ready:
            return error_response(503, "model is still loading", "server_error")
        body = req.json()
        if not isinstance(body, dict):
            raise HttpError(400, "request body must be a JSON object")
        prompt_ids = self._prompt_ids(body, chat)
        sampling = self._sampling(body, chat, len(prompt_ids))
        seq = Sequence(request_id=("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex, prompt_ids=prompt_ids,
                       sampling=sampling)
        queue: asyncio.Queue[Event] = asyncio.Queue()
        seq.sink = lambda tok, reason: queue.put_nowait((tok, reason))
        self.engine.submit(seq)
        stream_opts = body.get("stream_options") or {}
        if body.get("stream"):
            include_usage = bool(isinstance(stream_opts, dict) and stream_opts.get("include_usage"))
            return StreamResponse(chunks=self._sse(seq, queue, chat, include_usage))
        return await self._complete(seq, queue, chat)

    def _prompt_ids(self, body: dict[str, Any], chat: bool) -> list[int]:
        if body.get("n", 1) != 1:
            raise HttpError(400, "n must be 1")
        if chat:
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
                raise HttpError(400, "messages must be a non-empty list of objects")
            ids = self.tokenizer.chat_prompt(messages)
        else:
            ids = self._completion_prompt(body.get("prompt"))
        if not ids:
            raise HttpError(400, "prompt is empty after tokenisation")
        if len(ids) >= self.runner.max_model_len:
            raise HttpError(400, f"prompt has {len(ids)} tokens; this model's maximum context length is "
                                 f"{self.runner.max_model_len}")
        return ids

    def _completion_prompt(self, prompt: Any) -> list[int]:
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], (str, list)):
            prompt = prompt[0]
        if isinstance(prompt, str):
            return self.tokenizer.encode(prompt)
        if isinstance(prompt, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            bad = [t for t in prompt if t < 0]
            if bad:
                raise HttpError(400, f"prompt token ids must be non-negative, got {bad[0]}")
            return list(prompt)
        raise HttpError(400, "prompt must be a string or a list of token ids (one prompt per request)")

    def _sampling(self, body: dict[str, Any], chat: bool, prompt_len: int) -> Sampling:
        room = self.runner.max_model_len - prompt_len
        raw = body.get("max_completion_tokens", body.get("max_tokens")) if chat else body.get("max_tokens")
        max_tokens = (room if chat else 16) if raw is None else _int(raw, "max_tokens", 1)
        if max_tokens > room:
            raise HttpError(400, f"this model's maximum context length is {self.runner.max_model_len} tokens; "
                                 f"the prompt has {prompt_len} and max_tokens asks for {max_tokens}")
        temperature = _number(body.get("temperature", 1.0), "temperature", 0.0, 2.0)
        top_p = _number(body.get("top_p", 1.0), "top_p", 0.0, 1.0)
        if top_p == 0.0:
            raise HttpError(400, "top_p must be in (0, 1]")
        seed = body.get("seed")
        return Sampling(max_tokens=max_tokens, temperature=temperature, top_p=top_p,
                        ignore_eos=bool(body.get("ignore_eos", False)),
                        min_tokens=_int(body.get("min_tokens", 0), "min_tokens", 0),
                        seed=None if seed is None else _int(seed, "seed", 0))

    def _usage(self, seq: Sequence) -> dict[str, int]:
        n_in, n_out = len(seq.prompt_ids), len(seq.output_ids)
        return {"prompt_tokens": n_in, "completion_tokens": n_out, "total_tokens": n_in + n_out}

    def _chunk(self, seq: Sequence, chat: bool, text: str | None, finish: str | None,
               first: bool = False) -> dict[str, Any]:
        if chat:
            delta: dict[str, Any] = {"role": "assistant", "content": text or ""} if first else (
                {"content": text} if text is not None else {})
            choice: dict[str, Any] = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            kind = "chat.completion.chunk"
        else:
            choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
            kind = "text_completion"
        return {"id": seq.request_id, "object": kind, "created": int(time.time()), "model": self.name,
                "choices": [choice]}

    async def _sse(self, seq: Sequence, queue: asyncio.Queue[Event], chat: bool,
                   include_usage: bool) -> AsyncIterator[bytes]:
        detok = IncrementalDetokenizer(self.tokenizer)
        try:
            if chat:
                yield _sse(self._chunk(seq, chat, "", None, first=True))
            while True:
                tok, finish = await queue.get()
                text = detok.push(tok) if tok is not None else ("" if chat else None)
                chunk = self._chunk(seq, chat, text if tok is not None else None, finish)
                if finish is not None:
                    chunk["usage"] = self._usage(seq)
                yield _sse(chunk)
                if finish is not None:
                    break
            if include_usage:
                usage_chunk = self._chunk(seq, chat, None, None)
                usage_chunk["choices"] = []
                usage_chunk["usage"] = self._usage(seq)
                yield _sse(usage_chunk)
            yield b"data: [DONE]\n\n"
        finally:
            if not seq.finished:
                self.engine.cancel(seq)

    async def _complete(self, seq: Sequence, queue: asyncio.Queue[Event], chat: bool) -> Response:
        detok = IncrementalDetokenizer(self.tokenizer)
        parts: list[str] = []
        finish: str | None = None
        try:
            while finish is None:
                tok, finish = await queue.get()
                if tok is not None:
                    parts.append(detok.push(tok))
        finally:
            if not seq.finished:
                self.engine.cancel(seq)
        text = "".join(parts)
        if chat:
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text},
                                      "logprobs": None, "finish_reason": finish}
            kind = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
            kind = "text_completion"
        return json_response({"id": seq.request_id, "object": kind, "created": int(time.time()), "model": self.name,
                              "choices": [choice], "usage": self._usage(seq)})


def _dispatch(events: list[tuple[Sequence, int | None, str | None]]) -> None:
    for seq, tok, reason in events:
        if seq.sink is not None:
            seq.sink(tok, reason)


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def _int(value: Any, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise HttpError(400, f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _number(value: Any, name: str, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise HttpError(400, f"{name} must be a number in [{lo}, {hi}], got {value!r}")
    return float(value)
