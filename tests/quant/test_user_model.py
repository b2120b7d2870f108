"""A user's FILE.py:FUNCTION: loaded and called, or refused in one line naming what is wrong."""

from __future__ import annotations

import pytest
from helpers import own_model_file
from torch import nn

from filmqnn_quant.user_model import (
    UserModelError,
    build_user_model,
    is_factory_spec,
    load_factory,
)


def test_spec_form():
    assert is_factory_spec("models/net.py:make") and is_factory_spec("/a/b.py:Net")
    for s in ("resnet18", "net.py", "net.txt:make", "net.py:1make", "net.py:"):
        assert not is_factory_spec(s), s


def test_the_factory_is_called_with_the_options(tmp_path):
    path = own_model_file(tmp_path)
    m = build_user_model(f"{path}:make", {"num_classes": 3, "width": 5})
    assert isinstance(m, nn.Module) and m.fc.out_features == 3 and m.stem[0].out_channels == 5
    assert callable(load_factory(f"{path}:OwnNet"))


def test_refusals_name_the_file_and_the_problem(tmp_path):
    path = own_model_file(tmp_path)
    with pytest.raises(UserModelError, match="does not exist"):
        load_factory(f"{tmp_path / 'none.py'}:make")
    with pytest.raises(UserModelError, match=r"has no function 'build' \(it has: make\)"):
        load_factory(f"{path}:build")
    with pytest.raises(UserModelError, match="pass its options with --model-arg"):
        build_user_model(f"{path}:make", {"depth": 3})
    bad = tmp_path / "bad.py"
    bad.write_text("import not_a_module_anywhere\n")
    with pytest.raises(UserModelError, match="importing .* failed: ModuleNotFoundError"):
        load_factory(f"{bad}:make")
    other = tmp_path / "other.py"
    other.write_text("def make():\n    return 42\n")
    with pytest.raises(UserModelError, match="returned int, not an nn.Module"):
        build_user_model(f"{other}:make", {})
