"""Entry point: `python3 -m server [flags]` (see config.py or --help).

The port opens at once and /health answers 503 {"status": "loading"} until the model is loaded,
so a supervisor can tell a slow load from a dead process. SIGTERM or SIGINT: stop accepting, end
every open stream with finish_reason "abort", stop the engine thread, free the model and the GPU
memory, exit 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import Any

from . import __version__
from .config import ServerConfig, parse_config
from .httpd import HttpServer, Request, Response, StreamResponse, json_response
from .openai_api import OpenAIApp

log = logging.getLogger("llem.server")


def build_model(cfg: ServerConfig) -> tuple[Any, Any, dict[str, Any]]:
    """Returns (tokenizer, runner, info) for the configured source."""
    info: dict[str, Any] = {"server": "llem-pytorch", "version": __version__, "source": cfg.source,
                            "batching": cfg.batching, "maxBatchSize": cfg.max_batch_size}
    if cfg.source == "fake":
        from .fake import FakeRunner
        from .tokenizers import WordTokenizer

        runner = FakeRunner(vocab_size=cfg.random.vocab_size, max_model_len=cfg.max_model_len or 4096,
                            step_seconds=cfg.fake_step_seconds)
        return WordTokenizer(cfg.random.vocab_size), runner, {**info, "simulated": True}
    if cfg.tensor_parallel_size > 1:
        runner = build_tensor_parallel(cfg)
    elif cfg.cuda_graphs:
        from .graph_runner import GraphRunner

        runner = GraphRunner(cfg)
    else:
        from .torch_runner import TorchRunner

        runner = TorchRunner(cfg)
    import torch
    import transformers

    info.update({"simulated": False, "dtype": str(runner.dtype).replace("torch.", ""), "device": str(runner.device),
                 "attnImplementation": cfg.attn_implementation, "compile": cfg.compile,
                 "cudaGraphs": cfg.cuda_graphs and runner.device.type == "cuda",
                 "quantization": cfg.quantization, "parameters": runner.parameters,
                 "tensorParallelSize": cfg.tensor_parallel_size, "rank0Parameters": runner.shard_parameters,
                 "torchVersion": torch.__version__, "transformersVersion": transformers.__version__})
    return runner.tokenizer, runner, info


def build_tensor_parallel(cfg: ServerConfig) -> Any:
    """Rank 0: starts ranks 1..N-1, joins the group, builds its own share; the others follow its broadcasts."""
    from .tensor_parallel import DistributedRunner, start_rank0
    from .torch_runner import TorchRunner

    device, procs = start_rank0(cfg, list(cfg.argv))
    try:
        runner = TorchRunner(cfg, device=device)
    except Exception:
        for p in procs:
            p.kill()
        raise
    return DistributedRunner(runner, procs)


class Server:
    def __init__(self, cfg: ServerConfig) -> None:
        self.cfg = cfg
        self.app: OpenAIApp | None = None
        self.http = HttpServer(self.handle)
        self.stopping = asyncio.Event()

    async def handle(self, req: Request) -> Response | StreamResponse:
        if self.app is None:
            return json_response({"status": "loading"} if req.path == "/health" else
                                 {"error": {"message": "model is still loading", "type": "server_error"}}, 503)
        return await self.app.handle(req)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        port = await self.http.start(self.cfg.host, self.cfg.port)
        log.info("listening on %s:%d (loading %s from %s)", self.cfg.host, port, self.cfg.model, self.cfg.source)
        print(json.dumps({"event": "listening", "host": self.cfg.host, "port": port}), flush=True)
        load = asyncio.ensure_future(asyncio.to_thread(build_model, self.cfg))
        stop = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({load, stop}, return_when=asyncio.FIRST_COMPLETED)
        if not load.done():  # SIGTERM while loading: the loader thread cannot be interrupted; exit now
            await self.http.close()
            return 0
        tokenizer, runner, info = load.result()
        self.app = OpenAIApp(self.cfg.name, tokenizer, runner, batching=self.cfg.batching,
                             max_batch_size=self.cfg.max_batch_size, batch_wait_ms=self.cfg.batch_wait_ms, info=info)
        self.app.start()
        log.info("ready: %s", json.dumps(self.app.stats()))
        print(json.dumps({"event": "ready", "stats": self.app.stats()}), flush=True)
        await stop
        return await self.shutdown()

    async def shutdown(self) -> int:
        assert self.app is not None
        log.info("shutting down: %s", json.dumps(self.app.stats()))
        self.app.ready = False
        await asyncio.to_thread(self.app.engine.stop)
        await asyncio.sleep(0)  # deliver the engine's abort events to open streams
        await self.http.close()
        self.app.runner.close()
        print(json.dumps({"event": "stopped", "memory": self.app.runner.memory_stats()}), flush=True)
        return 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    cfg = parse_config(argv)
    if cfg.tp_rank > 0:
        from .tensor_parallel import main_rank

        return main_rank(cfg)
    try:
        return asyncio.run(Server(cfg).run())
    except Exception:
        log.exception("server failed")
        return 1


if __name__ == "__main__":
    sys.exit(main())
