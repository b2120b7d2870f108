"""Export a model for one accelerator: weights.bin, program.bin, manifest.json and config.json.

The pipeline (:func:`export`)::

    build_model -> load checkpoint (or seeded random init, said loudly) -> prepare_qat(config)
      -> calibrate (dataset images, or random images in [0, 1], said loudly)
      -> to_integer(qmodel, input_shape, config) -> write_image / manifest / config

The three files are written into a temporary sibling directory which is renamed into place
only when complete: the output directory is either the previous export or the new one,
never a mixture and never half-written. :func:`check_export` validates a directory written
here (image CRC, version and config hash, manifest/image agreement, code ranges).

torch is imported lazily (only :func:`export` needs it), so ``check`` works without it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import importlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from filmqnn_hw.compiler.program_builder import build_program
from filmqnn_hw.spec.config import AcceleratorConfig, ConfigError
from filmqnn_hw.spec.files import atomic_write
from filmqnn_hw.spec.intgraph import AddOp, ConvOp, IntGraph, PoolOp
from filmqnn_hw.spec.program import VERSION as PROGRAM_VERSION
from filmqnn_hw.spec.program import LayerProgram, ProgramCorruptError, ProgramError
from filmqnn_hw.spec.weight_image import FORMAT_VERSION, WeightImageError, read_image, write_image

__all__ = [
    "MANIFEST_FORMAT",
    "DEFAULT_INPUT",
    "ExportError",
    "ExportResult",
    "export",
    "export_graph",
    "check_export",
    "check_runs_on",
    "design_for",
    "manifest_layers",
    "write_export_dir",
]

#: Version tag of manifest.json.
MANIFEST_FORMAT = "filmqnn-export-v1"
#: Default (C, H, W) of each model's input when neither a checkpoint nor --input-size says.
DEFAULT_INPUT: dict[str, tuple[int, int, int]] = {
    "resnet18": (3, 224, 224),
    "resnet50": (3, 224, 224),
    "mobilenet_v2": (3, 224, 224),
    "small_cnn": (1, 28, 28),
}
#: Names of the three files of an export directory.
IMAGE_FILE, MANIFEST_FILE, CONFIG_FILE = "weights.bin", "manifest.json", "config.json"
PROGRAM_FILE = "program.bin"
RANDOM_INIT_WARNING = (
    "RANDOM INITIALISATION: no --checkpoint was given, the weights are a seeded random init. "
    "This image is for testing the hardware flow only; its predictions are meaningless."
)
RANDOM_CALIB_WARNING = (
    "RANDOM CALIBRATION: no --calib-data was given, activation ranges were calibrated on "
    "random images in [0, 1]; accuracy will be poor for a trained checkpoint."
)


RANDOM_SELECT_WARNING = (
    "RANDOM SELECTION IMAGES: no --calib-data was given, the 8-bit filters were re-selected on "
    "random images in [0, 1]; pass --calib-data for a meaningful selection."
)
RESELECT_WARNING = (
    "8-BIT FILTERS RE-SELECTED: the QAT checkpoint's 8-bit selection was replaced by a new one "
    "for this accelerator's slots; filters that changed width were not fine-tuned at their new "
    "width, so accuracy may be lower than the checkpoint's"
)


class ExportError(RuntimeError):
    """An export or check that cannot be carried out; the message says why and what to do."""


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("filmqnn")
    except Exception:  # pragma: no cover - not installed as a distribution
        return "unknown"


def _need(module: str, what: str, hint: str = "update the repository") -> Any:
    """Import ``filmqnn_quant.<module>``/``filmqnn_hw.<module>`` or explain what is missing."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and module.startswith(e.name):
            raise ExportError(
                f"{module} is not available in this checkout, but export needs it for {what}; "
                f"{hint}"
            ) from None
        raise


def _canonical_model(name: str) -> str:
    models = _need("filmqnn_quant.models", "building the model")
    key = name.lower().replace("-", "_")
    key = {"mobilenetv2": "mobilenet_v2", "smallcnn": "small_cnn", "cnn": "small_cnn"}.get(
        key, key
    )
    known = sorted(getattr(models, "MODELS", DEFAULT_INPUT))
    if key not in known:
        raise ExportError(f"unknown model {name!r}; valid models: {', '.join(known)}")
    return key


# =============================================================================================
# Manifest
# =============================================================================================
def _tensor_scale(graph: IntGraph, name: str) -> dict[str, Any]:
    t = graph.tensors.get(name) or (graph.input if name == graph.input.name else None)
    if t is None:
        return {"tensor": name}
    return {"tensor": name, "scale": t.scale, "zero_point": t.zero_point, "shape": list(t.shape)}


def manifest_layers(graph: IntGraph, blocks: list[dict] | None = None) -> list[dict[str, Any]]:
    """One manifest entry per operation of ``graph`` (conv, pool and add), in execution order."""
    by_name = {b["name"]: b for b in (blocks or [])}
    shape = {n: t.shape for n, t in graph.tensors.items()}
    shape[graph.input.name] = graph.input.shape
    out: list[dict[str, Any]] = []
    for op in graph.ops:
        e: dict[str, Any] = {"name": op.name}
        if isinstance(op, ConvOp):
            e.update(
                kind=op.kind,
                input=op.input,
                output=op.output,
                in_channels=op.in_channels,
                out_channels=op.out_channels,
                kernel=list(op.kernel),
                stride=list(op.stride),
                padding=list(op.padding),
                groups=op.groups,
                n_8bit=op.n_8bit,
                bits=np.asarray(op.bits).astype(int).tolist(),
                permutation=None
                if op.permutation is None
                else np.asarray(op.permutation).astype(int).tolist(),
                residual=op.residual,
                lo=op.lo,
                hi=op.hi,
                scales={
                    "input": _tensor_scale(graph, op.input),
                    "output": _tensor_scale(graph, op.output),
                    "mult": np.asarray(op.mult).astype(int).tolist(),
                    "shift": np.asarray(op.shift).astype(int).tolist(),
                    "res_mult": None
                    if op.res_mult is None
                    else np.asarray(op.res_mult).astype(int).tolist(),
                },
            )
            if op.name in by_name:
                b = by_name[op.name]
                e["weights"] = {"offset": b["offset"], "bytes": b["bytes"], "lanes": b["lanes"]}
        elif isinstance(op, PoolOp):
            c = shape.get(op.input, (0,))[0]
            kind = "global_avgpool" if op.kernel is None else f"{op.mode}pool"
            e.update(
                kind=kind,
                input=op.input,
                output=op.output,
                in_channels=c,
                out_channels=c,
                kernel=None if op.kernel is None else list(op.kernel),
                stride=list(op.stride),
                padding=list(op.padding),
                n_8bit=0,
                permutation=None,
                lo=op.lo,
                hi=op.hi,
                scales={
                    "input": _tensor_scale(graph, op.input),
                    "output": _tensor_scale(graph, op.output),
                    "mult": op.mult,
                    "shift": op.shift,
                },
            )
        elif isinstance(op, AddOp):
            c = shape.get(op.a, (0,))[0]
            e.update(
                kind="add",
                inputs=[op.a, op.b],
                output=op.output,
                in_channels=c,
                out_channels=c,
                kernel=None,
                stride=None,
                n_8bit=0,
                permutation=None,
                lo=op.lo,
                hi=op.hi,
                scales={
                    "input": _tensor_scale(graph, op.a),
                    "input_b": _tensor_scale(graph, op.b),
                    "output": _tensor_scale(graph, op.output),
                    "mult": [op.mult_a, op.mult_b],
                    "shift": op.shift,
                },
            )
        out.append(e)
    return out


def _dump_manifest(m: dict[str, Any]) -> str:
    """JSON with one line per layer (readable, and small even for ResNet-50)."""
    lines = ["{"]
    items = list(m.items())
    for i, (k, v) in enumerate(items):
        sep = "," if i < len(items) - 1 else ""
        if k == "layers":
            lines.append('  "layers": [')
            for j, layer in enumerate(v):
                lsep = "," if j < len(v) - 1 else ""
                lines.append("    " + json.dumps(layer, separators=(", ", ": ")) + lsep)
            lines.append("  ]" + sep)
        else:
            body = json.dumps(v, indent=2, sort_keys=True).replace("\n", "\n  ")
            lines.append(f"  {json.dumps(k)}: {body}{sep}")
    lines.append("}")
    return "\n".join(lines) + "\n"


# =============================================================================================
# Writing the directory
# =============================================================================================
@dataclass
class ExportResult:
    """What :func:`export` / :func:`write_export_dir` produced."""

    out_dir: Path
    manifest: dict[str, Any]
    graph: IntGraph
    config: AcceleratorConfig
    seconds: dict[str, float] = field(default_factory=dict)


def _check_out_dir(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise ExportError(f"--out {out} exists and is not a directory; choose another path")
        entries = {p.name for p in out.iterdir()}
        if entries and MANIFEST_FILE not in entries:
            raise ExportError(
                f"--out {out} exists, is not empty and is not a previous export (no "
                f"{MANIFEST_FILE}); refusing to replace it: choose another path"
            )
    parent = out.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise ExportError(f"cannot create --out {out}: {parent} is not a writable directory")


def _build_program(graph: IntGraph, config: AcceleratorConfig) -> Any:
    """The layer program (descriptors + DDR map) for ``graph`` on ``config``."""
    try:
        return build_program(graph, config)
    except ProgramError as e:
        raise ExportError(f"cannot build the layer program: {e}") from None


def check_runs_on(graph: IntGraph, config: AcceleratorConfig) -> None:
    """Refuse (:class:`ExportError`, naming the layer by the model's own module path) a graph
    the accelerator cannot run: a window, stride or padding beyond its limits (a global average
    pooling counts its whole input map as the window), a grouped convolution, or a layer the
    generated RTL of ``config`` refuses (``geometry.check_program``)."""
    from filmqnn_hw.spec.geometry import RtlUnsupported, check_network, check_program, geometry
    from filmqnn_hw.spec.networks import NetworkError, from_intgraph

    try:
        check_network(from_intgraph(graph))
    except (RtlUnsupported, NetworkError) as e:
        raise ExportError(f"the accelerator cannot run {graph.name or 'this network'}: {e}; "
                          "change that layer of the model (docs/rtl.md lists the limits)"
                          ) from None
    try:
        geometry(config)
    except RtlUnsupported:
        return  # a target-schedule config: no generated RTL to check the program against
    try:
        check_program(_build_program(graph, config), config)
    except RtlUnsupported as e:
        raise ExportError(f"the accelerator of config {config.config_hash()[:12]} cannot run "
                          f"{graph.name or 'this network'}: {e}") from None


def write_export_dir(
    out: str | os.PathLike,
    graph: IntGraph,
    config: AcceleratorConfig,
    info: dict[str, Any],
    log: Callable[[str], None] = print,
) -> ExportResult:
    """Write weights.bin + manifest.json + config.json for ``graph`` into ``out`` atomically.

    ``info`` holds the manifest's global fields that only the caller knows (model, board,
    random_init, checkpoint, calibration, ...). The files are written into a temporary
    sibling directory that replaces ``out`` only when everything is written.
    """
    out = Path(out).absolute()
    _check_out_dir(out)
    check_runs_on(graph, config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        t0 = time.perf_counter()
        blocks: list[dict] = []
        try:
            sha = write_image(tmp / IMAGE_FILE, graph, config, blocks=blocks)
        except WeightImageError as e:
            raise ExportError(f"cannot pack the weight image: {e}") from None
        size = (tmp / IMAGE_FILE).stat().st_size
        log(f"[export] packed {IMAGE_FILE}: {size} bytes in {time.perf_counter() - t0:.2f} s")
        program = _build_program(graph, config)
        prog_bytes = program.to_bytes()
        (tmp / PROGRAM_FILE).write_bytes(prog_bytes)
        log(f"[export] wrote {PROGRAM_FILE}: {len(graph.ops)} descriptors, DDR span "
            f"{program.mem_bytes} bytes")
        convs = graph.conv_ops()
        n_filters = sum(op.out_channels for op in convs)
        manifest: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            **info,
            "config_hash": config.config_hash(),
            "image": {
                "file": IMAGE_FILE,
                "sha256": sha,
                "bytes": size,
                "format_version": FORMAT_VERSION,
            },
            "program": {
                "file": PROGRAM_FILE,
                "sha256": hashlib.sha256(prog_bytes).hexdigest(),
                "bytes": len(prog_bytes),
                "format_version": PROGRAM_VERSION,
                "ddr_bytes": program.mem_bytes,
                "input_addr": program.input_addr,
                "output_addr": program.output_addr,
            },
            "created_with": {
                "filmqnn": _version(),
                "python": platform.python_version(),
                "numpy": np.__version__,
            },
            "created_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "input": {
                "tensor": graph.input.name,
                "shape": list(graph.input.shape),
                "scale": graph.input.scale,
                "zero_point": graph.input.zero_point,
            },
            "output": _tensor_scale(graph, graph.output),
            "totals": {
                "ops": len(graph.ops),
                "conv_layers": len(convs),
                "weights": int(sum(op.weight.size for op in convs)),
                "filters": n_filters,
                "filters_8bit": int(sum(op.n_8bit for op in convs)),
            },
            "config": config.to_dict(),
            "layers": manifest_layers(graph, blocks),
        }
        if "torch" in sys.modules:
            manifest["created_with"]["torch"] = sys.modules["torch"].__version__
        atomic_write(tmp / MANIFEST_FILE, _dump_manifest(manifest))
        atomic_write(tmp / CONFIG_FILE, config.to_json() + "\n")
        os.chmod(tmp, 0o755)
        old = None
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.rmdir(old)
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportResult(out, manifest, graph, config)


def export_graph(
    out: str | os.PathLike,
    graph: IntGraph,
    config: AcceleratorConfig,
    *,
    model: str = "custom",
    board: str | None = None,
    random_init: bool = False,
    log: Callable[[str], None] = print,
    **extra: Any,
) -> ExportResult:
    """Export an already-built integer graph (library entry point; no torch needed)."""
    info = {
        "model": model,
        "board": board or config.board,
        "random_init": random_init,
        **({"warnings": [RANDOM_INIT_WARNING]} if random_init else {}),
        **extra,
    }
    return write_export_dir(out, graph, config, info, log)


# =============================================================================================
# The full pipeline
# =============================================================================================
def load_config(board: str | None, config_file: str | os.PathLike | None, ratio: float,
                networks: tuple[Any, ...] | None = None):
    """The accelerator config: from ``config_file`` if given, else ``dse.design(board, ratio)``
    for ``networks`` (``filmqnn_hw.spec.networks.Network`` objects; default the benchmark
    networks, the objective of ``python -m filmqnn_hw.build BOARD``)."""
    if config_file is not None:
        p = Path(config_file)
        if not p.is_file():
            raise ExportError(f"--config {p} does not exist")
        try:
            cfg = AcceleratorConfig.read(p)
        except ConfigError as e:
            raise ExportError(f"--config {e}") from None
        if board is not None and board != cfg.board:
            raise ExportError(
                f"--config {p} is for board {cfg.board!r}, but --board {board!r} was given; "
                "drop one of them"
            )
        return cfg
    if board is None:
        raise ExportError("give --board NAME (or --config FILE.json) to choose the accelerator")
    dse = _need(
        "filmqnn_hw.search.dse",
        f"designing the accelerator for board {board!r}",
        "update the repository, or pass --config FILE.json with an accelerator config",
    )
    try:
        if networks:
            return dse.design(board, ratio, networks)
        return dse.design(board, ratio)
    except (KeyError, FileNotFoundError, ValueError) as e:
        boards = _known_boards()
        msg = str(e).strip("'\"")
        if boards and board not in boards:
            msg = f"unknown board {board!r}; valid boards: {', '.join(boards)}"
        raise ExportError(msg) from None


def design_for(model: Any, board: str, input_shape: tuple[int, ...], *, name: str = "model",
               ratio: float = 0.05) -> AcceleratorConfig:
    """The accelerator config the design search picks on ``board`` for the float ``model``
    at ``input_shape`` (``[C,] H, W``), as :func:`export` does for a user's model; for the
    QAT path (``prepare_qat(model, config)``, your training loop, ``to_integer``,
    :func:`export_graph`; ``docs/own-model.md``). Refuses a model the accelerator cannot run."""
    shape = _input_shape(tuple(input_shape), 3)
    network = _checked_network(model, shape, name)
    return load_config(board, None, ratio, (network,))


def _known_boards() -> list[str]:
    try:
        import boards as _b  # type: ignore[import-not-found]

        return sorted(_b.list_boards())
    except Exception:
        return []


def _strip_prefix(sd: dict[str, Any]) -> dict[str, Any]:
    if sd and all(k.startswith("module.") for k in sd):
        return {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def _load_state(module: Any, sd: dict[str, Any], path: Path) -> None:
    """Strict load with a message listing missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [
        f"{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in sd and hasattr(sd[k], "shape") and tuple(sd[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:6])}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:6])}")
        if shapes:
            parts.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:4])}")
        raise ExportError(
            f"checkpoint {path} does not fit this model: " + " | ".join(parts) + "; check "
            "--model, --num-classes and --input-size (or re-save the checkpoint)"
        )
    module.load_state_dict(sd)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise ExportError(f"--checkpoint {path} does not exist")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise ExportError(f"--checkpoint {path} cannot be read by torch.load: {e}") from None
    if not isinstance(ck, dict):
        raise ExportError(
            f"--checkpoint {path} holds a {type(ck).__name__}, not a state_dict or a dict with "
            "'state_dict'"
        )
    return ck


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def export(
    model: str | Any,
    out: str | os.PathLike,
    *,
    name: str | None = None,
    board: str | None = None,
    config_file: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    ratio: float | None = None,
    input_size: tuple[int, ...] | None = None,
    num_classes: int | None = None,
    calib_batches: int = 2,
    batch_size: int = 8,
    calib_data: str | os.PathLike | Iterable[Any] | None = None,
    seed: int = 0,
    reselect: bool = False,
    model_args: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> ExportResult:
    """Build, quantize, convert and export ``model`` for a board (see module docstring).

    ``model`` is a built-in name (``resnet18``, ...), a user's ``FILE.py:FUNCTION`` that
    returns an ``nn.Module`` (called with ``model_args`` and ``num_classes``), or an
    ``nn.Module`` (``docs/own-model.md``); ``name`` names a user's model in the manifest and
    reports (default: the function or class name). A user's model needs ``input_size``
    (``(H, W)`` for three channels, or ``(C, H, W)``), and with ``board`` the design search
    optimises the accelerator for that model (``build BOARD --manifest DIR/manifest.json``
    finds the same config). ``calib_data``: a dataset name (``filmqnn_quant.data``), a
    ``.npy`` array or a folder of images, or (Python) an iterable of image batches in [0, 1]
    such as a ``DataLoader`` (a batch may be an ``(images, labels)`` pair); default random
    images, said loudly. The model's layers are checked against the accelerator's limits
    before any calibration (:func:`filmqnn_quant.network.network_of`).

    ``reselect`` (QAT checkpoints only): choose the 8-bit filters again for this accelerator's
    slots (paper Eq. 4 on calibration images) instead of keeping the trained selection; needed
    when the checkpoint was trained without this config, and said loudly because the filters
    that change width were not fine-tuned at their new width. ``model_args``: extra keyword
    arguments of :func:`filmqnn_quant.models.build_model` (e.g. ``width_mult``).
    """
    times: dict[str, float] = {}
    t_all = time.perf_counter()
    ratio_explicit = ratio is not None
    user_model = _user_model_name(model, name)
    key = user_model or _canonical_model(model)
    out = Path(out)
    _check_out_dir(out.absolute())
    import torch

    qat = _need("filmqnn_quant.qat", "quantization-aware preparation and calibration")
    convert = _need("filmqnn_quant.convert", "conversion to the integer graph")

    # ---- checkpoint (decides model options, input shape and QAT state) ----
    ck: dict[str, Any] | None = None
    ck_info: dict[str, Any] | None = None
    model_kwargs: dict[str, Any] = {}
    in_shape: tuple[int, ...] = DEFAULT_INPUT.get(key, (3, 0, 0))
    qat_state = None
    if checkpoint is not None:
        cpath = Path(checkpoint)
        ck = _read_checkpoint(cpath)
        ck_info = {"path": str(cpath), "sha256": _sha256_file(cpath)}
        if "format" in ck and "model" in ck:  # written by filmqnn_quant.train
            if _canonical_model(ck["model"]) != key:
                raise ExportError(
                    f"--checkpoint {cpath} is a {ck['model']!r} checkpoint, not {model!r}; "
                    f"use --model {ck['model']}"
                )
            model_kwargs = dict(ck.get("model_kwargs", {}))
            if ck.get("input_shape"):
                in_shape = tuple(int(v) for v in ck["input_shape"])  # type: ignore[assignment]
            if ck.get("precision") == "qat":
                qat_state = ck["state_dict"]
                if ratio is not None and ck.get("ratio") is not None and ratio != ck["ratio"]:
                    raise ExportError(
                        f"--ratio {ratio} differs from the QAT checkpoint's ratio {ck['ratio']}; "
                        "drop --ratio (the 8-bit filters were chosen during training)"
                    )
                ratio = ck.get("ratio", ratio)
            ck_info.update(format=ck["format"], precision=ck.get("precision"))
    ratio = 0.05 if ratio is None else float(ratio)
    if input_size is not None:
        new_shape = _input_shape(input_size, in_shape[0])
        if ck is not None and new_shape != tuple(in_shape) and "format" in ck:
            raise ExportError(
                f"--input-size {' '.join(map(str, input_size))} differs from the checkpoint's "
                f"input {'x'.join(map(str, in_shape))}; drop --input-size"
            )
        in_shape = new_shape
    elif user_model:
        raise ExportError(f"give --input-size [C] H W for your model {key!r} (the shape of one "
                          "input image; C defaults to 3)")
    if num_classes is not None:
        model_kwargs["num_classes"] = int(num_classes)
    for k, v in (model_args or {}).items():
        if ck is not None and "format" in ck and k in model_kwargs and model_kwargs[k] != v:
            raise ExportError(
                f"--model-arg {k}={v} differs from the checkpoint's {k}={model_kwargs[k]}"
            )
        model_kwargs[k] = v
    if key == "small_cnn":
        if in_shape[1] != in_shape[2]:
            raise ExportError(f"smallcnn needs a square input, not {in_shape[1]}x{in_shape[2]}")
        model_kwargs.setdefault("input_size", in_shape[1])
    elif not user_model and min(in_shape[1:]) <= 64:
        model_kwargs.setdefault("small_input", True)
    if not user_model:
        model_kwargs.setdefault("in_channels", in_shape[0])

    # ---- model, and its layers against the accelerator's limits (before any calibration) ----
    torch.manual_seed(seed)
    net = _build_net(model, key, user_model, model_kwargs)
    network = _checked_network(net, tuple(in_shape), key)
    if reselect and qat_state is None:
        raise ExportError(
            "--reselect only applies to QAT checkpoints (a float model is always selected for "
            "the config during export)"
        )
    batches: list[Any] = []
    if qat_state is None or reselect:
        batches = _calibration_batches(
            calib_data, in_shape, calib_batches, batch_size, seed, log, qat_state is None
        )

    # ---- accelerator config ----
    t0 = time.perf_counter()
    config = load_config(board, config_file, ratio, (network,) if user_model else None)
    if config_file is not None:
        if ratio_explicit and ratio != config.ratio_8bit:
            raise ExportError(
                f"--ratio {ratio} differs from the ratio_8bit {config.ratio_8bit} of --config "
                f"{config_file}; drop --ratio (the config fixes the 8-bit slots)"
            )
        ratio = config.ratio_8bit
    times["config"] = time.perf_counter() - t0
    log(
        f"[export] accelerator config {config.config_hash()[:12]} for board {config.board} "
        f"(tm={config.tm}, tn={config.tn}, n8_slots={config.n8_slots}"
        + (f"; designed for {key}" if user_model and config_file is None else "")
        + f"; {times['config']:.1f} s)"
    )

    # ---- weights ----
    t0 = time.perf_counter()
    random_init = checkpoint is None
    if ck is not None and qat_state is None:
        sd = ck.get("state_dict", ck) if isinstance(ck.get("state_dict"), dict) else ck
        _load_state(net, _strip_prefix(sd), Path(checkpoint))  # type: ignore[arg-type]
        log(f"[export] loaded FP32 weights from {checkpoint}")
    if random_init:
        log("[export] !!! " + RANDOM_INIT_WARNING)
    net.eval()
    if batches:
        example = batches[0][:2]  # prepare_qat's initial pass; calibrate() sets the ranges
    if qat_state is not None:
        example = torch.rand((1, *in_shape), generator=torch.Generator().manual_seed(seed))
    try:
        qmodel = qat.prepare_qat(net, config, ratio=ratio, example_input=example)
    except ValueError as e:
        raise ExportError(f"cannot prepare {key} for quantization: {e}") from None
    times["build"] = time.perf_counter() - t0
    log(f"[export] built {key} {model_kwargs} input {in_shape} ({times['build']:.1f} s)")

    # ---- calibration / QAT state ----
    t0 = time.perf_counter()
    calib: dict[str, Any]
    if qat_state is not None:
        _load_state(qmodel, _strip_prefix(qat_state), Path(checkpoint))  # type: ignore[arg-type]
        calib = {"source": "checkpoint (QAT state: scales and 8-bit selection as trained)"}
        log(f"[export] loaded QAT state from {checkpoint} (no re-calibration)")
        if reselect:
            if not hasattr(qmodel, "selection_frozen"):
                raise ExportError("this QuantModel cannot re-select its 8-bit filters")
            log("[export] !!! " + RESELECT_WARNING)
            with torch.no_grad():
                qmodel.selection_frozen.fill_(False)
                qmodel.select_8bit(batches[0][:4])
                qmodel.freeze_selection()
            calib["source"] = (
                "checkpoint scales; 8-bit filters RE-SELECTED for this config on "
                + _calib_source(calib_data, batches)
            )
    else:
        calib = {
            "source": _calib_source(calib_data, batches),
            "batches": calib_batches,
            "batch_size": batch_size,
            "seed": seed,
        }
        log(f"[export] calibrating on {len(batches)} batch(es) of {batch_size} ...")
        try:
            with torch.no_grad():
                qmodel.calibrate(batches)
                qmodel.select_8bit(batches[0][:4])
                qmodel.freeze_selection()
        except ValueError as e:
            raise ExportError(f"cannot calibrate {key}: {e}") from None
    times["calibrate"] = time.perf_counter() - t0
    if qat_state is None:
        log(f"[export] calibrated ({times['calibrate']:.1f} s)")

    # ---- integer conversion ----
    t0 = time.perf_counter()
    log("[export] converting to the integer graph ...")
    qmodel.eval()
    try:
        graph = convert.to_integer(qmodel, tuple(in_shape), config)
    except ValueError as e:
        hint = ""
        if qat_state is not None and "slot" in str(e):
            hint = (
                " (the QAT checkpoint's 8-bit selection was made for a different accelerator "
                "layout: run QAT with this config, e.g. prepare_qat(model, config), or pass "
                "--reselect to choose the 8-bit filters again for this accelerator, which may "
                "cost accuracy)"
            )
        raise ExportError(f"cannot convert {key} to the integer graph: {e}{hint}") from None
    times["convert"] = time.perf_counter() - t0
    log(f"[export] converted: {len(graph.ops)} ops ({times['convert']:.1f} s)")

    t0 = time.perf_counter()
    warnings = []
    if random_init:
        warnings.append(RANDOM_INIT_WARNING)
    if qat_state is None and calib_data is None:
        warnings.append(RANDOM_CALIB_WARNING)
    if reselect:
        warnings.append(RESELECT_WARNING)
        if calib_data is None:
            warnings.append(RANDOM_SELECT_WARNING)
    info = {
        "model": key,
        "model_kwargs": model_kwargs,
        "board": config.board,
        "ratio": ratio,
        "random_init": random_init,
        "random_init_seed": seed if random_init else None,
        "checkpoint": ck_info,
        "calibration": calib,
        "warnings": warnings,
    }
    res = write_export_dir(out, graph, config, info, log)
    times["write"] = time.perf_counter() - t0
    times["total"] = time.perf_counter() - t_all
    res.seconds = times
    return res


def _user_model_name(model: Any, name: str | None) -> str | None:
    """The manifest name of a user's model (``FILE.py:FUNCTION`` or an ``nn.Module``), or
    None for a built-in name."""
    from filmqnn_quant.user_model import is_factory_spec

    if isinstance(model, str):
        if not is_factory_spec(model):
            return None
        return name or model.rpartition(":")[2]
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ExportError(f"model must be a built-in name, FILE.py:FUNCTION or an nn.Module, "
                          f"not {type(model).__name__}")
    return name or type(model).__name__


def _input_shape(input_size: tuple[int, ...], channels: int) -> tuple[int, int, int]:
    dims = tuple(int(v) for v in input_size)
    if len(dims) not in (2, 3) or min(dims) < 1:
        raise ExportError(f"--input-size takes [C] H W, positive, not {' '.join(map(str, dims))}")
    return dims if len(dims) == 3 else (channels, *dims)  # type: ignore[return-value]


def _build_net(model: Any, key: str, user_model: str | None, kwargs: dict[str, Any]) -> Any:
    """The float ``nn.Module``: a built-in by name, a user's factory called with ``kwargs``,
    or the given module."""
    if user_model is None:
        models = _need("filmqnn_quant.models", "building the model")
        try:
            return models.build_model(key, **kwargs)
        except ValueError as e:
            raise ExportError(str(e)) from None
    if not isinstance(model, str):
        if kwargs:
            raise ExportError(f"model arguments {sorted(kwargs)} apply to a factory "
                              "(FILE.py:FUNCTION), not to a given nn.Module")
        return model
    from filmqnn_quant.user_model import UserModelError, build_user_model

    try:
        return build_user_model(model, kwargs)
    except UserModelError as e:
        raise ExportError(str(e)) from None


def _checked_network(net: Any, in_shape: tuple[int, int, int], key: str) -> Any:
    """The model's layer list (:func:`filmqnn_quant.network.network_of`), refused (naming the
    layer by its module path) if the quantizer cannot represent it or the accelerator cannot
    run it."""
    from filmqnn_hw.spec.geometry import RtlUnsupported, check_network
    from filmqnn_hw.spec.networks import NetworkError
    from filmqnn_quant.graph import GraphError
    from filmqnn_quant.network import network_of

    try:
        network = network_of(net, in_shape, key)
        check_network(network)
    except (GraphError, NetworkError) as e:
        raise ExportError(f"cannot export {key}: {e}") from None
    except RtlUnsupported as e:
        raise ExportError(f"the accelerator cannot run {key}: {e}; change that layer of the "
                          "model (docs/rtl.md lists the limits)") from None
    except RuntimeError as e:  # the forward pass of the shape propagation
        raise ExportError(f"cannot run {key} on a {'x'.join(map(str, in_shape))} input: "
                          f"{e}; check --input-size") from None
    return network


def _calib_source(calib_data: Any, batches: list[Any]) -> str:
    """What the manifest says the calibration images were."""
    if calib_data is None:
        return "random images in [0, 1]"
    if isinstance(calib_data, (str, os.PathLike)):
        return str(calib_data)
    return f"your data ({len(batches)} batches)"


def _user_batches(batches: Iterable[Any], in_shape: tuple[int, ...], n: int,
                  log: Callable[[str], None], for_calibration: bool) -> list[Any]:
    """The first ``n`` batches of a user's iterable (a ``DataLoader``, a list of tensors or
    arrays; ``(images, labels)`` pairs give their images), checked for shape and range."""
    import torch

    out = []
    for b in batches:
        if isinstance(b, (tuple, list)):
            b = b[0]
        t = torch.as_tensor(np.asarray(b) if not isinstance(b, torch.Tensor) else b)
        t = t.float()
        if t.ndim != 4 or tuple(t.shape[1:]) != tuple(in_shape):
            raise ExportError(f"calib_data: a batch of shape {tuple(t.shape)}, the model takes "
                              f"(N, {', '.join(map(str, in_shape))}) batches")
        if t.numel() and (float(t.min()) < 0.0 or float(t.max()) > 1.0):
            raise ExportError("calib_data: pixels must lie in [0, 1] (the accelerator's input "
                              "codes); scale the images, do not normalise them")
        out.append(t)
        if len(out) == n:
            break
    if not out:
        raise ExportError("calib_data gave no batches")
    what = "calibration" if for_calibration else "8-bit re-selection"
    log(f"[export] using {sum(len(t) for t in out)} images of your data for {what}")
    return out


def _calibration_batches(
    calib_data: str | os.PathLike | Iterable[Any] | None,
    in_shape: tuple[int, ...],
    n: int,
    batch_size: int,
    seed: int,
    log: Callable[[str], None],
    for_calibration: bool = True,
) -> list[Any]:
    import torch

    if n < 1:
        raise ExportError("--calib-batches must be at least 1")
    if calib_data is None:
        log("[export] !!! " + (RANDOM_CALIB_WARNING if for_calibration else RANDOM_SELECT_WARNING))
        g = torch.Generator().manual_seed(seed + 1)
        return [torch.rand((batch_size, *in_shape), generator=g) for _ in range(n)]
    if not isinstance(calib_data, (str, os.PathLike)):
        return _user_batches(calib_data, in_shape, n, log, for_calibration)
    data = _need("filmqnn_quant.data", "loading calibration images")
    source = str(calib_data)
    try:
        if source.lower().endswith(".npy") or Path(source).expanduser().is_dir():
            images = data.load_images(source)
        else:
            images = data.load_dataset(source, "train").images
    except (FileNotFoundError, ValueError) as e:
        raise ExportError(f"--calib-data {calib_data}: {e}") from None
    if tuple(images.shape[1:]) != tuple(in_shape):
        raise ExportError(
            f"--calib-data {calib_data} has images of shape {tuple(images.shape[1:])}, the "
            f"model takes {tuple(in_shape)}; use --input-size to match"
        )
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(images), size=min(len(images), n * batch_size), replace=False)
    imgs = torch.from_numpy(np.ascontiguousarray(images[np.sort(pick)]))
    what = "calibration" if for_calibration else "8-bit re-selection"
    log(f"[export] using {len(imgs)} images of {calib_data} for {what}")
    return [imgs[i : i + batch_size] for i in range(0, len(imgs), batch_size)]


# =============================================================================================
# Checking an export directory
# =============================================================================================
_CHECKED_FIELDS = ("name", "kind", "in_channels", "out_channels", "kernel", "stride", "n_8bit",
                   "permutation", "bits")  # fmt: skip


def check_export(directory: str | os.PathLike) -> str:
    """Validate an export directory; return a one-line summary or raise :class:`ExportError`.

    Checks: the three files exist and parse; config.json's hash equals the manifest's; the
    image passes every reader check against config.json (magic, version, length, CRC-32,
    config hash, code ranges); the accelerator can run the image's network
    (:func:`check_runs_on`); the image's SHA-256 equals the manifest's; program.bin is
    intact (length, CRC-32: a damaged file is reported as damaged) before its SHA-256 is
    compared with the manifest's (a mismatch there means another export), is built for
    config.json and is the program of the image; the manifest's layer list agrees with the
    image's operations field by field (including weight offsets, mult and shift).
    """
    d = Path(directory)
    if not d.is_dir():
        raise ExportError(f"{d} is not a directory (expected an export directory)")
    for f in (IMAGE_FILE, MANIFEST_FILE, CONFIG_FILE):
        if not (d / f).is_file():
            raise ExportError(f"{d} has no {f}; it is not a complete export: re-export it")
    try:
        manifest = json.loads((d / MANIFEST_FILE).read_text())
    except json.JSONDecodeError as e:
        raise ExportError(f"{d / MANIFEST_FILE} is not valid JSON: {e}") from None
    if manifest.get("format") != MANIFEST_FORMAT:
        raise ExportError(
            f"{d / MANIFEST_FILE} has format {manifest.get('format')!r}, expected "
            f"{MANIFEST_FORMAT!r}; re-export with this filmqnn"
        )
    try:
        config = AcceleratorConfig.from_json((d / CONFIG_FILE).read_text())
    except (ConfigError, json.JSONDecodeError, TypeError) as e:
        raise ExportError(f"{d / CONFIG_FILE} is not a valid accelerator config: {e}") from None
    chash = config.config_hash()
    if manifest.get("config_hash") != chash:
        raise ExportError(
            f"{CONFIG_FILE} hashes to {chash[:12]} but {MANIFEST_FILE} says "
            f"{str(manifest.get('config_hash'))[:12]}: the directory mixes two exports"
        )
    try:
        mhash = AcceleratorConfig.from_dict(manifest.get("config") or {}).config_hash()
    except (ConfigError, TypeError) as e:
        raise ExportError(f"{MANIFEST_FILE}'s 'config' is not a valid config: {e}") from None
    if mhash != chash:
        raise ExportError(
            f"{MANIFEST_FILE}'s 'config' hashes to {mhash[:12]}, {CONFIG_FILE} to {chash[:12]}: "
            "the directory mixes two exports"
        )
    blocks: list[dict] = []
    try:
        graph, _ = read_image(d / IMAGE_FILE, config, blocks=blocks)
    except WeightImageError as e:
        raise ExportError(f"{d / IMAGE_FILE}: {e}") from None
    check_runs_on(graph, config)
    sha = _sha256_file(d / IMAGE_FILE)
    img = manifest.get("image", {})
    if img.get("sha256") != sha:
        raise ExportError(
            f"{IMAGE_FILE} has SHA-256 {sha[:12]}, {MANIFEST_FILE} says "
            f"{str(img.get('sha256'))[:12]}: the files come from different exports"
        )
    if img.get("format_version") != FORMAT_VERSION:
        raise ExportError(
            f"{MANIFEST_FILE} says image version {img.get('format_version')}, the image is "
            f"version {FORMAT_VERSION}"
        )
    pinfo = manifest.get("program")
    if not isinstance(pinfo, dict) or not (d / PROGRAM_FILE).is_file():
        raise ExportError(f"{d} has no {PROGRAM_FILE} listed in {MANIFEST_FILE}: re-export it")
    pdata = (d / PROGRAM_FILE).read_bytes()
    # Integrity (length, CRC-32) before provenance (SHA-256 against the manifest): a damaged
    # file also differs from the manifest's hash, and must be reported as damaged, not as
    # a file of another export.
    try:
        LayerProgram.parse(pdata)
    except ProgramCorruptError as e:
        raise ExportError(
            f"{d / PROGRAM_FILE} is damaged: {e.problem}; copy it again from the original "
            "export or re-export"
        ) from None
    except ProgramError as e:
        raise ExportError(f"{d / PROGRAM_FILE}: {e}") from None
    if hashlib.sha256(pdata).hexdigest() != pinfo.get("sha256"):
        raise ExportError(
            f"{d / PROGRAM_FILE} is intact but does not match the SHA-256 in {MANIFEST_FILE}: "
            "the files come from different exports; re-export the directory"
        )
    try:
        LayerProgram.parse(pdata, config)
    except ProgramError as e:
        raise ExportError(f"{d / PROGRAM_FILE}: {e}") from None
    if _build_program(graph, config).to_bytes() != pdata:
        raise ExportError(
            f"{PROGRAM_FILE} is not the program of {IMAGE_FILE} on this config: re-export"
        )
    expect = manifest_layers(graph, blocks)
    got = manifest.get("layers")
    if not isinstance(got, list) or len(got) != len(expect):
        n = len(got) if isinstance(got, list) else "no"
        raise ExportError(
            f"{MANIFEST_FILE} lists {n} layers, {IMAGE_FILE} has {len(expect)}: "
            "the files come from different exports"
        )
    for i, (m, e) in enumerate(zip(got, expect, strict=True)):
        for k in (*_CHECKED_FIELDS, "weights", "scales"):
            if k in e and m.get(k) != e[k]:
                raise ExportError(
                    f"layer {i} ({e['name']!r}): {MANIFEST_FILE} field {k!r} disagrees with "
                    f"{IMAGE_FILE} ({str(m.get(k))[:60]} vs {str(e[k])[:60]})"
                )
    convs = graph.conv_ops()
    n_w = sum(op.weight.size for op in convs)
    n_f = sum(op.out_channels for op in convs)
    n_8 = sum(op.n_8bit for op in convs)
    flag = " [RANDOM INIT]" if manifest.get("random_init") else ""
    return (
        f"OK {d}: {manifest.get('model')} for {config.board} (config {chash[:12]}), image "
        f"v{FORMAT_VERSION} {img.get('bytes')} bytes CRC ok, {len(graph.ops)} ops "
        f"({len(convs)} conv), {n_w} weights, {n_8}/{n_f} filters 8-bit{flag}"
    )
