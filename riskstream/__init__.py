"""riskstream: streaming risk control for credit lines and project-finance facilities.

The package is a functional core (contracts, windows, features, models, policy, actuator) with a thin
imperative shell (`riskstream.stream`) that wires the core to Kafka through Faust.
"""

__version__ = "0.1.0"
