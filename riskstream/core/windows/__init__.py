"""Event-time windows declared as data (``features.yaml``), kept as sparse per-account buckets.

Three modules, one concept each: :mod:`~riskstream.core.windows.spec` (features.yaml parsed into window specs),
:mod:`~riskstream.core.windows.buckets` (adding events to buckets, aggregating and expiring them) and
:mod:`~riskstream.core.windows.codec` (buckets as bytes). Durations follow :mod:`riskstream.core.durations`.

>>> cfg = load_config_text('''
... version: 1
... windows:
...   - {name: dd, events: [drawdown], value: amount, granularity: 5m, horizons: [1h], aggregates: [count, sum, max]}
... ''', source="example.yaml")
>>> spec = cfg.windows[0]
>>> buckets = {}
>>> add_event(buckets, spec, 0, {"amount": 10.0})
>>> aggregate(buckets, spec, 3_600_000, as_of=3_599_999)
{'count': 1, 'sum': 10.0, 'max': 10.0}
"""

from riskstream.core.windows.buckets import VALUE_SCALE, add_event, aggregate, distinct_key, expire, to_fixed
from riskstream.core.windows.codec import decode_buckets, encode_buckets, skip_buckets
from riskstream.core.windows.spec import (
    AGGREGATES,
    FEATURE_WINDOWS,
    FeatureConfig,
    FeaturesError,
    WindowSpec,
    default_config,
    load_config,
    load_config_text,
)

__all__ = [
    "AGGREGATES", "FEATURE_WINDOWS", "FeatureConfig", "FeaturesError", "VALUE_SCALE", "WindowSpec", "add_event",
    "aggregate", "decode_buckets", "default_config", "distinct_key", "encode_buckets", "expire", "load_config",
    "load_config_text", "skip_buckets", "to_fixed",
]
