"""Smoke benchmark of the server on a real device: start it, stream concurrent requests, read /stats,
SIGTERM it, and print one JSON line per configuration (used for the GPU check of issue 8).

    python3 images/pytorch/smoke.py --concurrency 32 --requests 64 -- --source random --dtype bfloat16 ...
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def stream_one(port: int, prompt: str, max_tokens: int) -> dict:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "ignore_eos": True, "stream": True}
    t0 = time.monotonic()
    c.request("POST", "/v1/completions", body=json.dumps(body))
    r = c.getresponse()
    times, usage = [], None
    while True:
        line = r.readline()
        if not line:
            break
        if line.startswith(b"data: {"):
            times.append(time.monotonic())
            ev = json.loads(line[6:])
            usage = ev.get("usage", usage)
    c.close()
    return {"ttft": times[0] - t0, "itl": [b - a for a, b in zip(times, times[1:])], "e2e": times[-1] - t0,
            "usage": usage}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--requests", type=int, default=32)
    ap.add_argument("--prompt-words", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("server_args", nargs="*")
    a = ap.parse_args()
    proc = subprocess.Popen([sys.executable, "-m", "server", "--port", "0", *a.server_args], cwd=ROOT,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    port, ready = 0, None
    t_start = time.monotonic()
    assert proc.stdout is not None
    for line in proc.stdout:
        ev = json.loads(line)
        port = ev.get("port", port)
        if ev["event"] == "ready":
            ready = ev["stats"]
            break
    load_s = time.monotonic() - t_start
    if ready is None:
        print(json.dumps({"args": a.server_args, "error": f"server exited before ready: {proc.wait(30)}"}))
        return 1
    prompt = " ".join(f"w{i}" for i in range(a.prompt_words))
    results: list[dict] = []
    lock = threading.Lock()
    todo = list(range(a.requests))

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            res = stream_one(port, prompt, a.max_tokens)
            with lock:
                results.append(res)

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/stats")
    stats = json.loads(c.getresponse().read())
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    code = proc.wait(60)
    stopped = [json.loads(x) for x in rest.splitlines() if x.startswith("{")]
    out_tokens = sum(r["usage"]["completion_tokens"] for r in results)
    itl = sorted(x for r in results for x in r["itl"])
    print(json.dumps({
        "args": a.server_args, "concurrency": a.concurrency, "requests": len(results), "exit": code,
        "loadSeconds": round(load_s, 2), "parameters": ready.get("parameters") if ready else None,
        "outputTokensPerSecond": round(out_tokens / wall, 1),
        "ttftMedianMs": round(statistics.median(r["ttft"] for r in results) * 1000, 1),
        "itlMedianMs": round(statistics.median(itl) * 1000, 2), "itlP99Ms": round(itl[int(len(itl) * 0.99)] * 1000, 2),
        "allComplete": all(r["usage"]["completion_tokens"] == a.max_tokens for r in results),
        "memory": stats["memory"], "engine": stats["engine"], "afterStop": stopped[-1] if stopped else None,
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
