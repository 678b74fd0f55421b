"""Operator data shipped inside the package: one place for every file the code reads by default.

>>> TOPOLOGY.name, DEFAULT_POLICY.parent.name
('topology.yaml', 'policies')
"""

from pathlib import Path

HERE = Path(__file__).resolve().parent
TOPOLOGY = HERE / "topology.yaml"
FEATURES = HERE / "features.yaml"
MODELS = HERE / "models.yaml"
GERMAN_CREDIT = HERE / "germancredit.csv"
DEFAULT_POLICY = HERE / "policies" / "default.yaml"
CHALLENGER_POLICY = HERE / "policies" / "challenger.yaml"
