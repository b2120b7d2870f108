"""A user's own model for the exporter: ``path/to/file.py:factory``.

The factory is a function in the user's Python file that returns an ``nn.Module``; the
exporter calls it with the ``--model-arg KEY=VALUE`` options (and ``num_classes`` when
``--num-classes`` is given). The file is imported as a module of its own (its directory is not
put on ``sys.path``, so its imports must be importable as they are).
"""

from __future__ import annotations

import importlib.util
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

__all__ = ["UserModelError", "build_user_model", "is_factory_spec", "load_factory"]


class UserModelError(ValueError):
    """A factory spec that does not name a callable in a readable Python file."""


def is_factory_spec(spec: str) -> bool:
    """``spec`` has the form ``FILE.py:NAME``."""
    path, sep, name = spec.rpartition(":")
    return bool(sep) and path.endswith(".py") and name.isidentifier()


def load_factory(spec: str) -> Callable[..., Any]:
    """The function ``NAME`` of ``FILE.py`` for ``spec = "FILE.py:NAME"``."""
    if not is_factory_spec(spec):
        raise UserModelError(f"--model {spec!r}: give a built-in name or FILE.py:FUNCTION")
    file, _, name = spec.rpartition(":")
    path = Path(file).expanduser()
    if not path.is_file():
        raise UserModelError(f"--model {spec}: {path} does not exist")
    mod_name = f"filmqnn_user_model_{abs(hash(str(path.resolve())))}"
    loader_spec = importlib.util.spec_from_file_location(mod_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise UserModelError(f"--model {spec}: {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(loader_spec)
    try:
        loader_spec.loader.exec_module(module)
    except Exception as e:  # noqa: BLE001 - the user's file: report, do not crash
        raise UserModelError(f"--model {spec}: importing {path} failed: "
                             f"{type(e).__name__}: {e}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        have = sorted(n for n, v in vars(module).items()
                      if callable(v) and not n.startswith("_") and inspect.isfunction(v))
        raise UserModelError(f"--model {spec}: {path} has no function {name!r}"
                             + (f" (it has: {', '.join(have)})" if have else ""))
    return fn


def build_user_model(spec: str, kwargs: dict[str, Any]) -> nn.Module:
    """Call the factory of ``spec`` with ``kwargs``; it must return an ``nn.Module``."""
    fn = load_factory(spec)
    try:
        model = fn(**kwargs)
    except TypeError as e:
        raise UserModelError(f"--model {spec}: calling it with {kwargs or 'no arguments'} "
                             f"failed: {e}; pass its options with --model-arg KEY=VALUE"
                             ) from None
    if not isinstance(model, nn.Module):
        raise UserModelError(f"--model {spec}: returned {type(model).__name__}, not an "
                             "nn.Module")
    return model
