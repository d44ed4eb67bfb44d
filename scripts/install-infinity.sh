#!/usr/bin/env bash
# Installs the Infinity embedding server (https://github.com/michaelfeil/infinity) into its
# own virtualenv, for the integration tests that compare v10r's `infinity` provider with the
# local model. Reuses the venv when it already starts. CPU-only torch.
#
#   V10R_INFINITY_VENV   where the venv lives (default: ~/.cache/v10r/infinity-venv)
#   V10R_INFINITY_PYTHON interpreter to create it with (default: python3.11 or python3)
set -euo pipefail

VENV="${V10R_INFINITY_VENV:-$HOME/.cache/v10r/infinity-venv}"
PYTHON="${V10R_INFINITY_PYTHON:-$(command -v python3.11 || command -v python3)}"

# Pins: torch CPU build; the rest keep infinity-emb's server importable with this torch.
PINS=(
  "infinity-emb[server,torch]"
  "torch==2.13.0"
)

if [ -x "$VENV/bin/infinity_emb" ] && "$VENV/bin/infinity_emb" v2 --help >/dev/null 2>&1; then
  echo "infinity already installed in $VENV"
  exit 0
fi

mkdir -p "$(dirname "$VENV")"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "${PINS[@]}"
"$VENV/bin/infinity_emb" v2 --help >/dev/null
echo "infinity installed in $VENV"
