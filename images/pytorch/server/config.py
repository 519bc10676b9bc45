"""Command-line configuration of the server, parsed once at start-up."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, replace

from .model_kwargs import BNB_KEYS, ModelKwargsError, parse_model_kwargs

SOURCES = ("huggingface", "path", "random", "fake")
DTYPES = ("auto", "float16", "bfloat16", "float32")
BATCHING = ("static", "dynamic")
ATTENTION = ("eager", "sdpa", "flash_attention_2")
QUANTIZATION = ("none", "bitsandbytes4bit", "bitsandbytes8bit")
ARCHITECTURES = ("llama", "qwen2", "mistral")


@dataclass(frozen=True)
class RandomArchitecture:
    """Architecture of a random-initialised model (mirrors spec.model.source.random)."""

    architecture: str = "llama"
    hidden_size: int = 256
    num_layers: int = 2
    num_heads: int = 4
    num_kv_heads: int = 4
    intermediate_size: int = 512
    vocab_size: int = 32000
    max_position_embeddings: int = 4096


@dataclass(frozen=True)
class ServerConfig:
    model: str = "random"
    served_model_name: str | None = None
    source: str = "random"
    path: str | None = None
    revision: str = "main"
    random: RandomArchitecture = field(default_factory=RandomArchitecture)
    seed: int = 0
    dtype: str = "auto"
    device: str = "auto"
    batching: str = "dynamic"
    max_batch_size: int = 8
    batch_wait_ms: float = 20.0
    attn_implementation: str = "sdpa"
    compile: bool = False
    cuda_graphs: bool = False
    quantization: str = "none"
    max_model_len: int | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    # Fake runner only: seconds each forward step takes (simulates compute).
    fake_step_seconds: float = 0.002
    # --model-kwargs: extra from_pretrained options from the allow-list in model_kwargs.py.
    model_kwargs: dict = field(default_factory=dict)
    # Tensor parallelism (tensor_parallel.py): ranks, this process's rank, the group's rendezvous address.
    tensor_parallel_size: int = 1
    tp_rank: int = 0
    tp_init_method: str | None = None
    # The command line as given: rank 0 starts the other ranks with it.
    argv: tuple[str, ...] = ()

    def with_tp(self, rank: int, init_method: str) -> "ServerConfig":
        return replace(self, tp_rank=rank, tp_init_method=init_method)

    @property
    def name(self) -> str:
        return self.served_model_name or self.model


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python3 -m server", description="OpenAI-compatible server around transformers")
    p.add_argument("--model", default="random", help="Hugging Face id, or a name for path/random models")
    p.add_argument("--served-model-name", default=None, help="name reported by /v1/models (default: --model)")
    p.add_argument("--source", choices=SOURCES, default="huggingface",
                   help="huggingface: hub id (token from HF_TOKEN); path: local directory; random: random weights "
                        "from --random-* (no download); fake: test runner without torch (simulated)")
    p.add_argument("--path", default=None, help="model directory for --source path")
    p.add_argument("--revision", default="main")
    p.add_argument("--random-architecture", choices=ARCHITECTURES, default="llama")
    p.add_argument("--random-hidden-size", type=_positive_int, default=256)
    p.add_argument("--random-layers", type=_positive_int, default=2)
    p.add_argument("--random-heads", type=_positive_int, default=4)
    p.add_argument("--random-kv-heads", type=_positive_int, default=4)
    p.add_argument("--random-intermediate-size", type=_positive_int, default=512)
    p.add_argument("--random-vocab-size", type=_positive_int, default=32000)
    p.add_argument("--random-max-positions", type=_positive_int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=DTYPES, default="auto")
    p.add_argument("--device", default="auto", help="auto (cuda when available), cuda, cuda:N or cpu")
    p.add_argument("--batching", choices=BATCHING, default="dynamic")
    p.add_argument("--max-batch-size", type=_positive_int, default=8)
    p.add_argument("--batch-wait-ms", type=float, default=20.0,
                   help="static batching: how long to wait for a full batch before starting a partial one")
    p.add_argument("--attn-implementation", choices=ATTENTION, default="sdpa")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=False, help="torch.compile the forward")
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=False,
                   help="replay each decode step as a CUDA graph over a static KV cache (llama, mistral, qwen2; "
                        "the static cache holds max-batch-size x max-model-len)")
    p.add_argument("--quantization", choices=QUANTIZATION, default="none")
    p.add_argument("--max-model-len", type=_positive_int, default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--fake-step-seconds", type=float, default=0.002)
    p.add_argument("--tensor-parallel-size", type=_positive_int, default=1,
                   help="shard the model over this many GPUs (one process each, torch.distributed: NCCL on GPUs, "
                        "gloo on CPU); rank 0 serves HTTP")
    p.add_argument("--tp-rank", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--tp-init-method", default=None, help=argparse.SUPPRESS)
    p.add_argument("--model-kwargs", default=None,
                   help="JSON object of extra from_pretrained options (allow-list: trust_remote_code, code_revision, "
                        "low_cpu_mem_usage, use_safetensors, subfolder, rope_scaling, bnb_4bit_quant_type, "
                        "bnb_4bit_use_double_quant); trust_remote_code is false unless given as true")
    return p


def parse_config(argv: list[str] | None = None) -> ServerConfig:
    parser = build_parser()
    a = parser.parse_args(argv)
    if a.source == "path" and not a.path:
        parser.error("--source path needs --path")
    if a.cuda_graphs and a.compile:
        parser.error("--cuda-graphs and --compile are alternatives: use one of them")
    if a.cuda_graphs and a.quantization != "none":
        parser.error("--cuda-graphs needs --quantization none")
    if a.source == "random" and a.random_heads % a.random_kv_heads != 0:
        parser.error("--random-heads must be a multiple of --random-kv-heads")
    if a.source == "random" and a.random_hidden_size % a.random_heads != 0:
        parser.error("--random-hidden-size must be a multiple of --random-heads")
    if a.tensor_parallel_size > 1:
        eager_only = [f for f, on in (("--cuda-graphs", a.cuda_graphs), ("--compile", a.compile),
                                      ("--quantization " + a.quantization, a.quantization != "none"),
                                      ("--source fake", a.source == "fake")) if on]
        if eager_only:
            parser.error(f"--tensor-parallel-size {a.tensor_parallel_size} runs a torch model eager and unquantised; "
                         f"drop {', '.join(eager_only)}")
        if a.source == "random":
            for name, value in (("--random-heads", a.random_heads), ("--random-kv-heads", a.random_kv_heads),
                                ("--random-intermediate-size", a.random_intermediate_size)):
                if value % a.tensor_parallel_size != 0:
                    parser.error(f"--tensor-parallel-size {a.tensor_parallel_size} must divide {name} ({value})")
    if a.tensor_parallel_size > 1 and a.device not in ("auto", "cuda", "cpu"):
        parser.error(f"--device {a.device} names one device; with --tensor-parallel-size use auto, cuda or cpu "
                     "(rank r runs on the r-th visible GPU)")
    if not 0 <= a.tp_rank < a.tensor_parallel_size:
        parser.error(f"--tp-rank must be in [0, {a.tensor_parallel_size})")
    try:
        model_kwargs = parse_model_kwargs(a.model_kwargs)
    except ModelKwargsError as err:
        parser.error(str(err))
    if any(k in model_kwargs for k in BNB_KEYS) and a.quantization != "bitsandbytes4bit":
        parser.error("--model-kwargs: bnb_4bit_* options need --quantization bitsandbytes4bit")
    return ServerConfig(
        model=a.model, served_model_name=a.served_model_name, source=a.source, path=a.path, revision=a.revision,
        random=RandomArchitecture(
            architecture=a.random_architecture, hidden_size=a.random_hidden_size, num_layers=a.random_layers,
            num_heads=a.random_heads, num_kv_heads=a.random_kv_heads, intermediate_size=a.random_intermediate_size,
            vocab_size=a.random_vocab_size, max_position_embeddings=a.random_max_positions,
        ),
        seed=a.seed, dtype=a.dtype, device=a.device, batching=a.batching, max_batch_size=a.max_batch_size,
        batch_wait_ms=a.batch_wait_ms, attn_implementation=a.attn_implementation, compile=a.compile,
        cuda_graphs=a.cuda_graphs, quantization=a.quantization, max_model_len=a.max_model_len, host=a.host, port=a.port,
        fake_step_seconds=a.fake_step_seconds, model_kwargs=model_kwargs,
        tensor_parallel_size=a.tensor_parallel_size, tp_rank=a.tp_rank, tp_init_method=a.tp_init_method,
        argv=tuple(argv if argv is not None else sys.argv[1:]),
    )
