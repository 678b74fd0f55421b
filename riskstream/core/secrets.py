"""Secrets: from the environment or from a file named by the environment, never from topology.yaml or a log.

Each secret ``RISKSTREAM_X`` is read from the variable itself or, for mounted secrets (Kubernetes, Docker), from
the file named by ``RISKSTREAM_X_FILE`` (one trailing newline stripped). Both set is refused: which one wins would
be a guess. Without either, a secret that has a built-in development value falls back to it, which is public in
this source. In production mode (``RISKSTREAM_ENV=production``, or ``--env production`` on a command) every
process refuses to start while a development value is in use, with an operator error naming the variable.

>>> read_secret("RISKSTREAM_MODEL_KEY", {"RISKSTREAM_MODEL_KEY": "s3cret-model-key"})
b's3cret-model-key'
>>> read_secret("RISKSTREAM_MODEL_KEY", {}) is None
True
>>> [str(e) for e in production_problems({"RISKSTREAM_ENV": "production"})][0]
'environment: RISKSTREAM_MODEL_KEY: not set, so the built-in development key would sign and verify model snapshots. Fix: set RISKSTREAM_MODEL_KEY, or RISKSTREAM_MODEL_KEY_FILE to a file holding it (at least 16 random bytes)'
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Mapping

from riskstream.core.errors import OperatorError

__all__ = ["DEV_VALUES", "ENV_MODE", "MIN_BYTES", "PRODUCTION", "SecretError", "is_production", "production_problems",
           "read_secret", "secret_values"]

ENV_MODE = "RISKSTREAM_ENV"
PRODUCTION = "production"
MIN_BYTES = 16
ENVIRONMENT = "environment"

# The secrets with a built-in development value, what each protects, and that value (public: it is in this source).
DEV_VALUES: dict[str, tuple[str, bytes]] = {
    "RISKSTREAM_MODEL_KEY": ("key would sign and verify model snapshots",
                             b"riskstream-dev-model-key-NOT-FOR-PRODUCTION"),
    "RISKSTREAM_PSEUDONYM_SECRET": ("secret would pseudonymise ids and PII (reversible by dictionary attack)",
                                    b"riskstream-dev-pseudonym-secret-not-for-production"),
    "RISKSTREAM_CONTROL_KEY": ("key would sign control messages",
                               b"riskstream-dev-control-key-NOT-FOR-PRODUCTION"),
    "RISKSTREAM_CONTROL_KEYS": ("keyring would verify control messages (anyone could sign)",
                                b"dev: riskstream-dev-control-key-NOT-FOR-PRODUCTION"),
}
# Secrets without a development value: only their source rules apply.
OTHER = ("RISKSTREAM_KAFKA_SASL_PASSWORD",)


class SecretError(OperatorError):
    """A secret cannot be read, or is the development value in production."""


def _read_file(path: str) -> bytes:
    return Path(path).read_bytes()


def read_secret(name: str, environ: Mapping[str, str] | None = None,
                read: Callable[[str], bytes] = _read_file) -> bytes | None:
    """The secret `name` from `name` or from the file `name_FILE`; None when neither is set."""
    env = os.environ if environ is None else environ
    value, path = env.get(name), env.get(name + "_FILE")
    if value and path:
        raise SecretError(ENVIRONMENT, name, f"both {name} and {name}_FILE are set",
                          f"set only one of them (unset {name} to use the file)")
    if path:
        try:
            data = read(path)
        except OSError as exc:
            raise SecretError(path, name + "_FILE", f"cannot be read ({exc.strerror or exc.__class__.__name__})",
                              "check the path and that this process may read it") from None
        data = data[:-1] if data.endswith(b"\n") else data
        if not data:
            raise SecretError(path, name + "_FILE", "the file is empty", f"write the secret into {path}")
        return data
    return value.encode("utf-8") if value else None


def secret_or_dev(name: str, environ: Mapping[str, str] | None = None) -> bytes:
    """The secret, else its development value."""
    return read_secret(name, environ) or DEV_VALUES[name][1]


def is_production(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return env.get(ENV_MODE, "").strip().lower() == PRODUCTION


def production_problems(environ: Mapping[str, str] | None = None, *,
                        needed: tuple[str, ...] = tuple(DEV_VALUES)) -> list[SecretError]:
    """Why a process needing the secrets `needed` must not start: an unreadable secret in any mode, and in
    production mode a development value, a missing or a short secret. Empty: fine."""
    env = os.environ if environ is None else environ
    production = is_production(env)
    problems = []
    for name in needed:
        what = DEV_VALUES[name][0]
        try:
            value = read_secret(name, env)
        except SecretError as exc:
            problems.append(exc)
            continue
        if not production:
            continue
        fix = f"set {name}, or {name}_FILE to a file holding it (at least {MIN_BYTES} random bytes)"
        if value is None:
            problems.append(SecretError(ENVIRONMENT, name, f"not set, so the built-in development {what}", fix))
        elif b"NOT-FOR-PRODUCTION" in value.upper():  # every development value says so
            problems.append(SecretError(ENVIRONMENT, name, f"holds the built-in development value, so the {what}",
                                        fix.replace("set ", "replace it: set ", 1)))
        elif name != "RISKSTREAM_CONTROL_KEYS" and len(value) < MIN_BYTES:
            problems.append(SecretError(ENVIRONMENT, name, f"only {len(value)} bytes long", fix))
    return problems


def secret_values(environ: Mapping[str, str] | None = None) -> list[bytes]:
    """Every secret value this environment holds (to check that none reaches a log)."""
    out = []
    for name in (*DEV_VALUES, *OTHER):
        try:
            value = read_secret(name, environ)
        except SecretError:
            continue
        if value:
            out.append(value)
    return out
