"""FPGA board descriptions: one TOML file per board, validated on load.

A board file (``boards/<name>.toml``) has four tables::

    [board]      name, description, part, family ("xc7" | "xcup"), clock_mhz, max_clock_mhz
    [resources]  lut, ff, dsp, bram36, uram            (device totals, integers >= 0)
    [memory]     axi_ports, axi_data_bits, ddr_peak_gbps, ddr_efficiency
    [sources]    one entry per field above: where the number comes from
    [vivado]     optional: the processing system the Vivado hand-off (filmqnn_hw.flows.vivado) wires
                 the accelerator to: ps_ip, hp_ports, hp_data_bits, control_port,
                 control_base, board_part

Every field of the first four tables is required; ``[vivado]`` is optional, but if present
all its keys are. Unknown keys are refused, and every field must name its source.
Add a board by copying ``zcu102.toml`` and editing it; ``python -m filmqnn_hw.build
--list-boards`` lists what is found. :func:`load_board` accepts a known board name or a path
to a ``.toml`` file.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Board", "BoardError", "BoardVivado", "BOARD_DIR", "list_boards", "load_board",
           "parse_board"]

BOARD_DIR = Path(__file__).resolve().parent

#: Table -> {field: (python type(s), description)}; the schema of a board file.
_SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "board": {
        "name": ((str,), "short identifier, e.g. 'zcu102'"),
        "description": ((str,), "human-readable board name"),
        "part": ((str,), "full Xilinx part number"),
        "family": ((str,), "'xc7' (7-series, DSP48E1) or 'xcup' (UltraScale+, DSP48E2)"),
        "clock_mhz": ((int, float), "default accelerator clock in MHz"),
        "max_clock_mhz": ((int, float), "highest clock the device's clocked primitives allow "
                          "(a datasheet ceiling, not a timing-closure claim)"),
    },
    "resources": {
        "lut": ((int,), "LUTs (6-input) in the device"),
        "ff": ((int,), "flip-flops in the device"),
        "dsp": ((int,), "DSP slices in the device"),
        "bram36": ((int,), "36 Kb block RAMs in the device"),
        "uram": ((int,), "288 Kb UltraRAMs in the device (0 if none)"),
    },
    "memory": {
        "axi_ports": ((int,), "PL-to-DDR AXI master ports the design may use"),
        "axi_data_bits": ((int,), "data width of each port"),
        "ddr_peak_gbps": ((int, float), "peak DDR bandwidth in GB/s (1e9 bytes/s)"),
        "ddr_efficiency": ((int, float), "sustained fraction of peak DDR bandwidth, (0, 1]"),
    },
}
_FAMILIES = ("xc7", "xcup")
#: The optional ``[vivado]`` table (read by :mod:`filmqnn_hw.flows.vivado`).
_VIVADO_SCHEMA: dict[str, tuple[tuple[type, ...], str]] = {
    "ps_ip": ((str,), "processing-system IP: 'processing_system7' or 'zynq_ultra_ps_e'"),
    "hp_ports": ((list,), "PS slave ports to DDR, in the order masters are connected"),
    "hp_data_bits": ((int,), "data width the HP ports are configured to"),
    "control_port": ((str,), "PS master port that drives the AXI4-Lite control slave"),
    "control_base": ((int,), "address of the accelerator's control registers"),
    "board_part": ((str,), "Vivado board part (glob) whose preset configures the PS; '' = none"),
}
_PS_IPS = ("processing_system7", "zynq_ultra_ps_e")


class BoardError(ValueError):
    """A board name that is unknown or a board file that is malformed; says what to fix."""


@dataclass(frozen=True)
class BoardVivado:
    """The ``[vivado]`` table: how the accelerator is wired to the board's processing system."""

    ps_ip: str
    hp_ports: tuple[str, ...]
    hp_data_bits: int
    control_port: str
    control_base: int
    board_part: str


@dataclass(frozen=True)
class Board:
    """One FPGA board: device resources, default clock and DDR path, each with its source."""

    name: str
    description: str
    part: str
    family: str
    clock_mhz: float
    max_clock_mhz: float
    lut: int
    ff: int
    dsp: int
    bram36: int
    uram: int
    axi_ports: int
    axi_data_bits: int
    ddr_peak_gbps: float
    ddr_efficiency: float
    sources: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    path: str = ""
    vivado: BoardVivado | None = None

    @property
    def ddr_sustained_gbps(self) -> float:
        """Sustained DDR bandwidth (GB/s) the cycle model assumes."""
        return self.ddr_peak_gbps * self.ddr_efficiency

    def ddr_bytes_per_cycle(self, clock_mhz: float | None = None) -> float:
        """Sustained DDR bytes per accelerator clock cycle at ``clock_mhz`` (default clock)."""
        f = self.clock_mhz if clock_mhz is None else clock_mhz
        if f <= 0:
            raise BoardError(f"clock must be positive, not {f} MHz")
        return self.ddr_sustained_gbps * 1e9 / (f * 1e6)

    def port_gbps(self, clock_mhz: float | None = None) -> float:
        """Peak bandwidth of one AXI port at ``clock_mhz`` in GB/s."""
        f = self.clock_mhz if clock_mhz is None else clock_mhz
        return self.axi_data_bits / 8 * f * 1e6 / 1e9

    def resources(self) -> dict[str, int]:
        """Device totals keyed like the resource model: lut, ff, dsp, bram36."""
        return {"lut": self.lut, "ff": self.ff, "dsp": self.dsp, "bram36": self.bram36}

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for reports), including ``sources``."""
        d = {k: getattr(self, k) for t in _SCHEMA.values() for k in t}
        if self.vivado is not None:
            d.update({k: getattr(self.vivado, k) for k in _VIVADO_SCHEMA})
            d["hp_ports"] = list(self.vivado.hp_ports)
        d["sources"] = dict(self.sources)
        return d


def _where(origin: str) -> str:
    return f"board file {origin}"


def parse_board(data: dict[str, Any], origin: str = "<memory>") -> Board:
    """Validate a parsed board table and build a :class:`Board`.

    Raises :class:`BoardError` naming the file, the table and the key for: unknown or missing
    tables/keys, wrong types, unknown family, negative or zero counts, an efficiency outside
    (0, 1], a missing source.
    """
    where = _where(origin)
    if not isinstance(data, dict):
        raise BoardError(f"{where}: top level must be a table")
    allowed_tables = set(_SCHEMA) | {"sources", "vivado"}
    unknown = sorted(set(data) - allowed_tables)
    if unknown:
        raise BoardError(
            f"{where}: unknown table(s) {unknown}; allowed: {sorted(allowed_tables)}"
        )
    values: dict[str, Any] = {}
    for table, fields in _SCHEMA.items():
        tab = data.get(table)
        if tab is None:
            raise BoardError(f"{where}: missing table [{table}] (keys: {', '.join(fields)})")
        _check_table(tab, table, fields, where)
        values.update((key, tab[key]) for key in fields)
    vivado = _parse_vivado(data.get("vivado"), where)
    sources = data.get("sources")
    if not isinstance(sources, dict):
        raise BoardError(f"{where}: missing table [sources] (one entry per field)")
    all_keys = [k for t in _SCHEMA.values() for k in t]
    if vivado is not None:
        all_keys += list(_VIVADO_SCHEMA)
    unk = sorted(set(sources) - set(all_keys))
    if unk:
        raise BoardError(f"{where}: [sources] names unknown field(s) {unk}")
    missing = [k for k in all_keys if not str(sources.get(k, "")).strip()]
    if missing:
        raise BoardError(f"{where}: [sources] gives no source for: {', '.join(missing)}")

    if values["family"] not in _FAMILIES:
        raise BoardError(
            f"{where}: board.family must be one of {_FAMILIES} (xc7 = 7-series DSP48E1, "
            f"xcup = UltraScale+ DSP48E2), not {values['family']!r}"
        )
    if not values["name"].strip() or any(c in values["name"] for c in " /\\"):
        raise BoardError(f"{where}: board.name must be a non-empty word, not {values['name']!r}")
    for key in ("lut", "ff", "dsp", "bram36", "uram"):
        if values[key] < 0:
            raise BoardError(f"{where}: resources.{key} must be >= 0, not {values[key]}")
    for key in ("lut", "ff", "bram36"):
        if values[key] == 0:
            raise BoardError(f"{where}: resources.{key} must be positive, not 0")
    if values["clock_mhz"] <= 0:
        raise BoardError(f"{where}: board.clock_mhz must be positive, not {values['clock_mhz']}")
    if values["max_clock_mhz"] < values["clock_mhz"]:
        raise BoardError(f"{where}: board.max_clock_mhz ({values['max_clock_mhz']}) is below "
                         f"board.clock_mhz ({values['clock_mhz']})")
    if values["axi_ports"] < 1:
        raise BoardError(f"{where}: memory.axi_ports must be >= 1, not {values['axi_ports']}")
    if values["axi_data_bits"] not in (32, 64, 128, 256, 512):
        raise BoardError(
            f"{where}: memory.axi_data_bits must be 32/64/128/256/512, "
            f"not {values['axi_data_bits']}"
        )
    if values["ddr_peak_gbps"] <= 0:
        raise BoardError(f"{where}: memory.ddr_peak_gbps must be positive")
    if not 0 < values["ddr_efficiency"] <= 1:
        raise BoardError(
            f"{where}: memory.ddr_efficiency must be in (0, 1], not {values['ddr_efficiency']}"
        )
    values["clock_mhz"] = float(values["clock_mhz"])
    values["max_clock_mhz"] = float(values["max_clock_mhz"])
    values["ddr_peak_gbps"] = float(values["ddr_peak_gbps"])
    values["ddr_efficiency"] = float(values["ddr_efficiency"])
    return Board(**values, sources={k: str(v) for k, v in sources.items()}, path=origin,
                 vivado=vivado)


def _check_table(tab: Any, table: str, fields: dict[str, tuple[tuple[type, ...], str]],
                 where: str) -> None:
    """Raise :class:`BoardError` unless ``tab`` is a table with exactly the keys of ``fields``
    (``{key: (types, description)}``), each of one of its types (a bool is never a number)."""
    if not isinstance(tab, dict):
        raise BoardError(f"{where}: [{table}] must be a table")
    unk = sorted(set(tab) - set(fields))
    if unk:
        raise BoardError(
            f"{where}: unknown key(s) {unk} in [{table}]; allowed: {', '.join(fields)}"
        )
    for key, (types, desc) in fields.items():
        if key not in tab:
            raise BoardError(f"{where}: missing key {table}.{key} ({desc})")
        v = tab[key]
        if isinstance(v, bool) or not isinstance(v, types):
            tn = " or ".join(t.__name__ for t in types)
            raise BoardError(f"{where}: {table}.{key} must be {tn}, not {v!r} ({desc})")


def _parse_vivado(tab: Any, where: str) -> BoardVivado | None:
    """Validate the optional ``[vivado]`` table (None if absent)."""
    if tab is None:
        return None
    _check_table(tab, "vivado", _VIVADO_SCHEMA, where)
    if tab["ps_ip"] not in _PS_IPS:
        raise BoardError(f"{where}: vivado.ps_ip must be one of {_PS_IPS}, not {tab['ps_ip']!r}")
    ports = tab["hp_ports"]
    if not ports or not all(isinstance(p, str) and p.strip() for p in ports):
        raise BoardError(f"{where}: vivado.hp_ports must be a non-empty list of port names")
    if tab["hp_data_bits"] not in (32, 64, 128):
        raise BoardError(f"{where}: vivado.hp_data_bits must be 32/64/128, "
                         f"not {tab['hp_data_bits']}")
    if not 0 <= tab["control_base"] < 1 << 40 or tab["control_base"] % 4096:
        raise BoardError(f"{where}: vivado.control_base must be a 4 KiB-aligned address, "
                         f"not {tab['control_base']:#x}")
    return BoardVivado(ps_ip=tab["ps_ip"], hp_ports=tuple(ports),
                       hp_data_bits=tab["hp_data_bits"], control_port=tab["control_port"],
                       control_base=tab["control_base"], board_part=tab["board_part"])


def list_boards(directory: Path | None = None) -> list[str]:
    """Names of the board files shipped in ``directory`` (default: this package)."""
    d = BOARD_DIR if directory is None else Path(directory)
    return sorted(p.stem for p in d.glob("*.toml"))


def load_board(board: str | Path | Board) -> Board:
    """Load a board by name (``"zcu102"``) or by path to a ``.toml`` file.

    A :class:`Board` is returned unchanged. An unknown name raises :class:`BoardError` that
    lists the known boards.
    """
    if isinstance(board, Board):
        return board
    s = str(board)
    p = Path(s)
    if s.endswith(".toml") or p.is_file():
        if not p.is_file():
            raise BoardError(f"board file {s} does not exist")
        path = p
    else:
        path = BOARD_DIR / f"{s}.toml"
        if not path.is_file():
            raise BoardError(
                f"unknown board {s!r}; known boards: {', '.join(list_boards())} "
                "(or pass the path to a board .toml file)"
            )
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise BoardError(f"board file {path}: not valid TOML: {e}") from e
    b = parse_board(data, str(path))
    if path.parent == BOARD_DIR and b.name != path.stem:
        raise BoardError(f"board file {path}: board.name {b.name!r} must equal the file name")
    return b
