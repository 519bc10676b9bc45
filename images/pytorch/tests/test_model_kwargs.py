"""--model-kwargs (ADR 0025): the allow-list, trust_remote_code off unless given, the token read from a file."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import ROOT, RunningServer
from server.config import parse_config
from server.model_kwargs import hub_token, loading_kwargs, tokenizer_kwargs


def test_allowed_options_reach_the_loader_with_trust_remote_code_false_unless_enabled():
    cfg = parse_config(["--source", "random", "--model-kwargs", json.dumps({
        "low_cpu_mem_usage": True, "rope_scaling": {"rope_type": "linear", "factor": 2.0}})])
    kw = loading_kwargs(cfg.model_kwargs)
    assert kw == {"low_cpu_mem_usage": True, "rope_scaling": {"rope_type": "linear", "factor": 2.0},
                  "trust_remote_code": False}
    assert tokenizer_kwargs(cfg.model_kwargs) == {"trust_remote_code": False}
    assert loading_kwargs(parse_config(["--source", "random"]).model_kwargs) == {"trust_remote_code": False}
    enabled = parse_config(["--source", "random", "--model-kwargs", '{"trust_remote_code": true, "code_revision": "v1"}'])
    assert loading_kwargs(enabled.model_kwargs)["trust_remote_code"] is True
    assert tokenizer_kwargs(enabled.model_kwargs) == {"trust_remote_code": True, "code_revision": "v1"}


@pytest.mark.parametrize("text, message", [
    ('{"device_map": "auto"}', "device_map is not an allowed option"),
    ('{"trust_remote_code": 1}', "trust_remote_code has the wrong type"),
    ('{"rope_scaling": {"rope_type": "linear", "factor": 2, "evil": 1}}', "rope_scaling.evil is not an allowed"),
    ('{"rope_scaling": {"rope_type": "nope", "factor": 2}}', "rope_scaling needs rope_type"),
    ('{"bnb_4bit_quant_type": "nf4"}', "need --quantization bitsandbytes4bit"),
    ("[1]", "must be a JSON object"),
])
def test_refuses_options_outside_the_allow_list_naming_them(capsys, text, message):
    with pytest.raises(SystemExit) as exc:
        parse_config(["--source", "random", "--model-kwargs", text])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_the_server_process_starts_with_model_kwargs_and_refuses_unknown_ones_before_loading():
    server = RunningServer(["--source", "fake", "--model", "m", "--model-kwargs", '{"low_cpu_mem_usage": true}'])
    try:
        assert server.get("/health")[0] == 200
    finally:
        server.stop()
    bad = subprocess.run([sys.executable, "-m", "server", "--source", "fake", "--model-kwargs", '{"x": 1}'],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "x is not an allowed option" in bad.stderr


def test_the_hub_token_comes_from_the_file_hf_token_path_names(tmp_path, monkeypatch):
    token = tmp_path / "token"
    token.write_text("hf_from_file\n")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_TOKEN_PATH", str(token))
    assert hub_token() == "hf_from_file"
    monkeypatch.delenv("HF_TOKEN_PATH")
    assert hub_token() is None


def test_rope_scaling_reaches_the_loaded_model_config():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from server.torch_runner import TorchRunner

    cfg = parse_config(["--source", "random", "--device", "cpu", "--random-hidden-size", "64", "--random-layers", "1",
                        "--random-heads", "4", "--random-kv-heads", "2", "--random-intermediate-size", "128",
                        "--random-vocab-size", "512", "--random-max-positions", "256", "--dtype", "float32",
                        "--model-kwargs", '{"rope_scaling": {"rope_type": "linear", "factor": 2.0}}'])
    runner = TorchRunner(cfg)
    assert runner.model.config.rope_scaling["factor"] == 2.0
