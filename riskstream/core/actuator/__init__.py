"""Actuator, pure core: turns decisions into commands for downstream services, safely.

* `step` — the per-account credit-line state machine (warn before close, cure, overrides, idempotency)
* `MassCloseBreaker` — holds CLOSE/FREEZE floods until an explicit reset
* `make_command` / `command_id` — commands with deterministic ids
"""

from riskstream.core.actuator.breaker import MassCloseBreaker
from riskstream.core.actuator.dedupe import SentCommands
from riskstream.core.actuator.commands import BREAKER_ACTIONS, COMMAND_ACTIONS, command_id, make_command
from riskstream.core.actuator.line import ActuatorConfig, LineState, decode_line, encode_line, step

__all__ = ["ActuatorConfig", "BREAKER_ACTIONS", "COMMAND_ACTIONS", "LineState", "MassCloseBreaker", "SentCommands",
           "command_id", "decode_line", "encode_line", "make_command", "step"]
