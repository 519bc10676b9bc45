"""Shared helpers: start the server as a real process and talk to it over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class RunningServer:
    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "server", "--port", "0", *args], cwd=ROOT, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.port = 0
        self.ready_stats: dict[str, Any] = {}
        deadline = time.monotonic() + 120
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"server exited early: {self.proc.wait()} {self.proc.stderr.read() if self.proc.stderr else ''}")
            event = json.loads(line)
            if event["event"] == "listening":
                self.port = event["port"]
            if event["event"] == "ready":
                self.ready_stats = event["stats"]
                return
        raise RuntimeError("server did not become ready in time")

    def conn(self, timeout: float = 60) -> http.client.HTTPConnection:
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def get(self, path: str) -> tuple[int, Any]:
        c = self.conn()
        c.request("GET", path)
        r = c.getresponse()
        body = json.loads(r.read())
        c.close()
        return r.status, body

    def post(self, path: str, body: Any) -> tuple[int, Any]:
        c = self.conn()
        c.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        out = json.loads(r.read())
        c.close()
        return r.status, out

    def stream(self, path: str, body: Any) -> list[tuple[float, Any]]:
        """POST with stream=true; returns (arrival time, parsed event) per SSE event ('[DONE]' kept as a string)."""
        c = self.conn()
        c.request("POST", path, body=json.dumps({**body, "stream": True}), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        assert r.status == 200, r.read()
        assert r.getheader("Content-Type") == "text/event-stream"
        events: list[tuple[float, Any]] = []
        while True:
            line = r.readline()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data: "):
                continue
            payload = line[len(b"data: "):].decode()
            events.append((time.monotonic(), payload if payload == "[DONE]" else json.loads(payload)))
        c.close()
        return events

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.terminate()
        out, err = self.proc.communicate(timeout=60)
        return self.proc.returncode, out, err


@pytest.fixture
def start_server() -> Iterator[Any]:
    servers: list[RunningServer] = []

    def start(*args: str) -> RunningServer:
        s = RunningServer(list(args))
        servers.append(s)
        return s

    yield start
    for s in servers:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
