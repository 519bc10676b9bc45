"""A minimal HTTP/1.1 server on asyncio streams (standard library only).

Enough for an OpenAI-compatible API: keep-alive, Content-Length and chunked request bodies, JSON
responses, and streamed responses in chunked transfer encoding where every chunk is written and
drained at once (TCP_NODELAY is set by asyncio), so each token reaches the client when it is made.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Awaitable, Callable
from urllib.parse import urlsplit

log = logging.getLogger("llem.server.http")

MAX_BODY_BYTES = 32 * 1024 * 1024
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
           413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}


class HttpError(Exception):
    def __init__(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except (ValueError, UnicodeDecodeError) as err:
            raise HttpError(400, f"request body is not valid JSON: {err}") from err


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class StreamResponse:
    chunks: AsyncIterator[bytes]
    status: int = 200
    content_type: str = "text/event-stream"


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(status=status, body=json.dumps(obj, separators=(",", ":")).encode())


def error_response(status: int, message: str, kind: str = "invalid_request_error") -> Response:
    return json_response({"error": {"message": message, "type": kind, "code": status}}, status)


Handler = Callable[[Request], Awaitable["Response | StreamResponse"]]


class HttpServer:
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.AbstractServer | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._on_connection, host, port, limit=256 * 1024)
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    async def close(self) -> None:
        """Stop accepting; cancel open connections (streams already ended by the engine's abort)."""
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                request = await _read_request(reader)
            except HttpError as err:
                await _write_response(writer, error_response(err.status, str(err)), keep_alive=False)
                return
            if request is None:
                return
            keep_alive = request.headers.get("connection", "").lower() != "close"
            try:
                response = await self._handler(request)
            except HttpError as err:
                response = error_response(err.status, str(err), err.kind)
            except Exception as err:  # one bad request must not take the server down
                log.exception("handler failed")
                response = error_response(500, f"internal error: {err}", "server_error")
            if isinstance(response, StreamResponse):
                await _write_stream(writer, response, keep_alive)
            else:
                await _write_response(writer, response, keep_alive)
            if not keep_alive:
                return


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as err:
        if err.partial.strip():
            raise HttpError(400, "incomplete request head") from err
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise HttpError(400, f"malformed request line {lines[0]!r}")
    method, target, _version = parts
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpError(400, f"malformed header {line!r}")
        headers[name.strip().lower()] = value.strip()
    body = await _read_body(reader, headers)
    url = urlsplit(target)
    return Request(method=method.upper(), path=url.path, query=url.query, headers=headers, body=body)


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                return bytes(out)
            if len(out) + size > MAX_BODY_BYTES:
                raise HttpError(413, f"request body over {MAX_BODY_BYTES} bytes")
            out += await reader.readexactly(size)
            await reader.readexactly(2)
    length = int(headers.get("content-length", "0") or "0")
    if length > MAX_BODY_BYTES:
        raise HttpError(413, f"request body over {MAX_BODY_BYTES} bytes")
    return await reader.readexactly(length) if length else b""


def _head(status: int, content_type: str, keep_alive: bool, extra: dict[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}", f"Content-Type: {content_type}",
             f"Connection: {'keep-alive' if keep_alive else 'close'}"]
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _write_response(writer: asyncio.StreamWriter, response: Response, keep_alive: bool) -> None:
    extra = {"Content-Length": str(len(response.body)), **response.headers}
    writer.write(_head(response.status, response.content_type, keep_alive, extra) + response.body)
    await writer.drain()


async def _write_stream(writer: asyncio.StreamWriter, response: StreamResponse, keep_alive: bool) -> None:
    extra = {"Transfer-Encoding": "chunked", "Cache-Control": "no-cache"}
    writer.write(_head(response.status, response.content_type, keep_alive, extra))
    chunks = response.chunks
    try:
        async for chunk in chunks:
            if writer.transport.is_closing():
                raise ConnectionResetError("client went away")
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
    finally:
        # Runs the generator's cleanup (which cancels its sequence) when the client disconnects.
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
