"""The OpenAI-compatible HTTP layer, over a real socket, with the fake runner (no torch needed)."""

from __future__ import annotations

import json
import signal
import threading
import time

FAKE = ("--source", "fake", "--model", "fake-model")


def test_health_and_models_describe_the_loaded_model(start_server):
    s = start_server(*FAKE)
    assert s.get("/health") == (200, {"status": "ok"})
    status, models = s.get("/v1/models")
    assert status == 200 and models["object"] == "list"
    card = models["data"][0]
    assert card["id"] == "fake-model" and card["object"] == "model"
    assert card["llem"]["simulated"] is True
    assert set(card["llem"]["memory"]) >= {"loadPeakBytes", "inferencePeakBytes"}


def test_a_streamed_completion_sends_one_event_per_token_and_usage_in_the_last_chunk(start_server):
    s = start_server(*FAKE)
    events = s.stream("/v1/completions", {"model": "fake-model", "prompt": "one two three", "max_tokens": 7,
                                          "temperature": 0})
    assert events[-1][1] == "[DONE]"
    chunks = [e for _, e in events[:-1]]
    assert len(chunks) == 7
    assert all(c["object"] == "text_completion" for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks] == [None] * 6 + ["length"]
    assert chunks[-1]["usage"] == {"prompt_tokens": 3, "completion_tokens": 7, "total_tokens": 10}
    assert all("usage" not in c for c in chunks[:-1])
    assert all(c["choices"][0]["text"].startswith("t") for c in chunks)


def test_each_token_is_flushed_when_it_is_made_not_at_the_end(start_server):
    s = start_server(*FAKE, "--fake-step-seconds", "0.08")
    events = s.stream("/v1/completions", {"prompt": "a b", "max_tokens": 5, "temperature": 0})
    times = [t for t, e in events if e != "[DONE]"]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # Each decode step takes 80 ms; buffered output would arrive in one burst (gaps near zero).
    assert min(gaps) > 0.04, gaps


def test_include_usage_adds_a_final_usage_chunk_with_no_choices(start_server):
    s = start_server(*FAKE)
    events = s.stream("/v1/completions", {"prompt": "x", "max_tokens": 3, "temperature": 0,
                                          "stream_options": {"include_usage": True}})
    last = events[-2][1]
    assert last["choices"] == [] and last["usage"]["completion_tokens"] == 3


def test_a_streamed_chat_completion_starts_with_the_assistant_role(start_server):
    s = start_server(*FAKE)
    events = s.stream("/v1/chat/completions", {"messages": [{"role": "user", "content": "hello there"}],
                                               "max_tokens": 4, "temperature": 0})
    chunks = [e for _, e in events if e != "[DONE]"]
    assert chunks[0]["object"] == "chat.completion.chunk"
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert len(chunks) == 1 + 4
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
    assert chunks[-1]["usage"]["completion_tokens"] == 4


def test_non_streaming_completion_and_chat_return_text_and_usage(start_server):
    s = start_server(*FAKE)
    status, body = s.post("/v1/completions", {"prompt": [5, 6, 7, 8], "max_tokens": 6, "temperature": 0})
    assert status == 200
    assert body["usage"] == {"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10}
    assert len(body["choices"][0]["text"].split()) == 6
    status, chat = s.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert status == 200 and chat["object"] == "chat.completion"
    assert chat["choices"][0]["message"]["role"] == "assistant"
    assert chat["usage"]["completion_tokens"] == 2


def test_the_same_request_gives_the_same_tokens(start_server):
    s = start_server(*FAKE)
    a = s.post("/v1/completions", {"prompt": "same words", "max_tokens": 5, "temperature": 0})[1]
    b = s.post("/v1/completions", {"prompt": "same words", "max_tokens": 5, "temperature": 0})[1]
    assert a["choices"][0]["text"] == b["choices"][0]["text"]


def test_bad_requests_get_a_400_with_an_openai_error_body(start_server):
    s = start_server(*FAKE, "--max-model-len", "64")
    cases = [
        {"prompt": "x", "max_tokens": 0},
        {"prompt": "x", "temperature": 5},
        {"prompt": {"not": "a prompt"}},
        {"prompt": "x", "n": 2},
        {"prompt": " ".join(["w"] * 64)},
        {"prompt": "x", "max_tokens": 100},
    ]
    for body in cases:
        status, out = s.post("/v1/completions", body)
        assert status == 400, body
        assert out["error"]["type"] == "invalid_request_error" and out["error"]["message"]
    c = s.conn()
    c.request("POST", "/v1/completions", body=b"{not json", headers={"Content-Type": "application/json"})
    assert c.getresponse().status == 400
    assert s.get("/v1/nothing")[0] == 404


def test_keep_alive_serves_several_requests_on_one_connection(start_server):
    s = start_server(*FAKE)
    c = s.conn()
    for _ in range(3):
        c.request("POST", "/v1/completions", body=json.dumps({"prompt": "k", "max_tokens": 2}))
        r = c.getresponse()
        assert r.status == 200 and json.loads(r.read())["usage"]["completion_tokens"] == 2
    c.close()


def test_ignore_eos_and_min_tokens_control_stopping(start_server):
    # The fake runner is not told to emit EOS here; stopping on EOS is covered in test_engine.py.
    s = start_server(*FAKE)
    body = s.post("/v1/completions", {"prompt": "x", "max_tokens": 4, "ignore_eos": True, "min_tokens": 4})[1]
    assert body["choices"][0]["finish_reason"] == "length"


def test_sigterm_ends_open_streams_with_abort_and_exits_cleanly(start_server):
    s = start_server(*FAKE, "--fake-step-seconds", "0.05")
    result: dict[str, object] = {}

    def consume() -> None:
        result["events"] = s.stream("/v1/completions", {"prompt": "x", "max_tokens": 2000})

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(0.5)
    s.proc.send_signal(signal.SIGTERM)
    t.join(30)
    code = s.proc.wait(30)
    out, err = s.proc.communicate()
    assert code == 0, err
    events = result["events"]
    finals = [e for _, e in events if e != "[DONE]" and e["choices"][0]["finish_reason"] is not None]
    assert finals and finals[-1]["choices"][0]["finish_reason"] == "abort"
    assert '"event": "stopped"' in out


def _concurrent(s, bodies):
    results: list[object] = [None] * len(bodies)

    def one(i: int) -> None:
        results[i] = s.stream("/v1/completions", bodies[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(bodies))]
    for t in threads:
        t.start()
        time.sleep(0.02)
    for t in threads:
        t.join(30)
    return results


def test_dynamic_batching_over_http_serves_concurrent_streams_in_one_batch(start_server):
    s = start_server(*FAKE, "--batching", "dynamic", "--max-batch-size", "4", "--fake-step-seconds", "0.02")
    results = _concurrent(s, [{"prompt": "p", "max_tokens": 20, "temperature": 0} for _ in range(4)])
    assert all(r[-2][1]["usage"]["completion_tokens"] == 20 for r in results)
    engine = s.get("/stats")[1]["engine"]
    assert engine["maxBatchRows"] == 4 and engine["requestsFinished"] == 4


def test_static_batching_over_http_runs_one_batch_at_a_time(start_server):
    s = start_server(*FAKE, "--batching", "static", "--max-batch-size", "2", "--batch-wait-ms", "100",
                     "--fake-step-seconds", "0.02")
    results = _concurrent(s, [{"prompt": "p", "max_tokens": n, "temperature": 0} for n in (10, 3, 10, 3)])
    engine = s.get("/stats")[1]["engine"]
    assert engine["prefillBatches"] == 2 and engine["maxBatchRows"] == 2
    # Two batches of 10 tokens each: 9 decode steps per batch, every one with both rows.
    assert engine["decodeSteps"] == 18 and engine["meanBatchRows"] == 2
    assert sorted(r[-2][1]["usage"]["completion_tokens"] for r in results) == [3, 3, 10, 10]
