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
