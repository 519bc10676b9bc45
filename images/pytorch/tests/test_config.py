"""Command-line configuration: combinations the server refuses before loading anything."""

from __future__ import annotations

import pytest

from server.config import parse_config


def test_cuda_graphs_refuses_compile_and_quantisation_on_the_command_line(capsys):
    for extra, message in ((["--compile"], "alternatives"), (["--quantization", "bitsandbytes4bit"], "none")):
        with pytest.raises(SystemExit) as exc:
            parse_config(["--source", "random", "--cuda-graphs", *extra])
        assert exc.value.code == 2
        assert message in capsys.readouterr().err


def test_cuda_graphs_is_off_unless_asked():
    assert parse_config(["--source", "random"]).cuda_graphs is False
    assert parse_config(["--source", "random", "--cuda-graphs"]).cuda_graphs is True


def test_tensor_parallel_refuses_graphs_compile_quantisation_and_the_fake_engine(capsys):
    for extra, named in ((["--cuda-graphs"], "--cuda-graphs"), (["--compile"], "--compile"),
                         (["--quantization", "bitsandbytes8bit"], "--quantization bitsandbytes8bit"),
                         (["--source", "fake"], "--source fake")):
        with pytest.raises(SystemExit) as exc:
            parse_config(["--source", "random", "--tensor-parallel-size", "2", *extra])
        assert exc.value.code == 2
        assert f"drop {named}" in capsys.readouterr().err


def test_tensor_parallel_must_divide_the_random_models_heads_kv_heads_and_mlp(capsys):
    for extra, named in ((["--random-heads", "6", "--random-kv-heads", "3", "--random-hidden-size", "384"],
                          "--random-kv-heads (3)"),
                         (["--random-intermediate-size", "513"], "--random-intermediate-size (513)")):
        with pytest.raises(SystemExit) as exc:
            parse_config(["--source", "random", "--tensor-parallel-size", "2", *extra])
        assert exc.value.code == 2
        assert f"must divide {named}" in capsys.readouterr().err


def test_tensor_parallel_keeps_the_command_line_for_the_other_ranks():
    cfg = parse_config(["--source", "random", "--tensor-parallel-size", "2", "--port", "0"])
    assert (cfg.tensor_parallel_size, cfg.tp_rank) == (2, 0)
    assert cfg.argv == ("--source", "random", "--tensor-parallel-size", "2", "--port", "0")
    assert parse_config(["--source", "random"]).tensor_parallel_size == 1


def test_tensor_parallel_refuses_one_named_device_for_all_ranks(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_config(["--source", "random", "--tensor-parallel-size", "2", "--device", "cuda:1"])
    assert exc.value.code == 2
    assert "--device cuda:1 names one device" in capsys.readouterr().err
