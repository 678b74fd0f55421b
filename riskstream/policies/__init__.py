"""Policy files shipped with riskstream: the champion (`default.yaml`) and a challenger variant."""

from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_POLICY = HERE / "default.yaml"
CHALLENGER_POLICY = HERE / "challenger.yaml"
