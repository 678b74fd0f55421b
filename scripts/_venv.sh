# Sourced by scripts/*: create .venv if needed and install riskstream (with the given extras) into it.
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
ensure_venv() {
  local extras="$1"
  local py="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($py --version 2>&1)" >&2
    "$py" -m venv .venv
  fi
  local stamp=".venv/.riskstream-${extras:-base}"
  local want
  want="$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[setup] installing riskstream${extras:+[$extras]} into .venv (first run takes a minute) ..." >&2
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
    echo "$want" > "$stamp"
  fi
}
