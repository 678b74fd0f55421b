"""The pure steps of riskstream, which the Faust shell and the offline driver both drive.

* `ingest`: raw upstream bytes → a validated, PII-free event re-keyed by entity, or a dead letter;
* `account_batch`: valid events + the account records they touch → new records, decisions, labels, versions;
* `actuate_batch`: decisions and control inputs + the lines they touch → new lines, commands, audit records;
* `train_batch`: labels → model → signed snapshots.

Each takes values (the context, a `get` for the table it owns, a batch) and returns values (the table writes and
the records to publish, each with a bounded metric label). None of them reads a clock or knows of Kafka.
"""

from riskstream.core.steps.account import STATE_REJECTIONS, StepResult, Valid, account_batch, account_one, \
    portfolio_key, versions_key
from riskstream.core.steps.actuate import ActuateResult, Decision, actuate_batch, breaker_key, tick_record
from riskstream.core.steps.context import Context, PipelineConfig, initial_model
from riskstream.core.steps.control import route_control
from riskstream.core.steps.ingest import Source, dead, ingest, ingest_batch
from riskstream.core.steps.records import Out, command_out
from riskstream.core.steps.train import TrainResult, TrainState, new_train_state, train_batch

__all__ = ["ActuateResult", "Context", "Decision", "Out", "PipelineConfig", "STATE_REJECTIONS", "Source",
           "StepResult", "TrainResult", "TrainState", "Valid", "account_batch", "account_one", "actuate_batch",
           "breaker_key", "command_out", "dead", "ingest", "ingest_batch", "initial_model", "new_train_state", "portfolio_key",
           "route_control", "tick_record", "train_batch", "versions_key"]
