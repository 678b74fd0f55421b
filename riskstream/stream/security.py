"""Kafka connection security: one settings object for every Kafka client riskstream opens.

`KafkaSecurity` holds the security protocol, SASL mechanism and credentials, and TLS files. It is read from the
environment (`from_env`: the password also from a file, like every secret; `riskstream.core.secrets`) and turned
into the keyword arguments of each client library: `faust()` for the Faust app, `aiokafka()` for the context
readers, the sent-command loader and the lag monitor, `kafka_python()` for the producers (simulator, control),
the topology admin and test readers. The password never appears in its repr.

>>> sec = KafkaSecurity.from_env({"RISKSTREAM_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
...                               "RISKSTREAM_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256",
...                               "RISKSTREAM_KAFKA_SASL_USERNAME": "riskstream",
...                               "RISKSTREAM_KAFKA_SASL_PASSWORD": "pw-not-shown"})
>>> sec
KafkaSecurity(protocol='SASL_PLAINTEXT', sasl_mechanism='SCRAM-SHA-256', sasl_username='riskstream', ssl_cafile=None, ssl_certfile=None, ssl_keyfile=None)
>>> sorted(sec.kafka_python())
['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
>>> KafkaSecurity().kafka_python()
{}
"""

from __future__ import annotations

import dataclasses
import os
import ssl
from typing import Mapping

from riskstream.core.errors import OperatorError
from riskstream.core.secrets import read_secret

__all__ = ["ENV", "KafkaSecurity", "MECHANISMS", "PROTOCOLS"]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
ENV = {
    "protocol": "RISKSTREAM_KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "RISKSTREAM_KAFKA_SASL_MECHANISM",
    "sasl_username": "RISKSTREAM_KAFKA_SASL_USERNAME",
    "sasl_password": "RISKSTREAM_KAFKA_SASL_PASSWORD",   # or RISKSTREAM_KAFKA_SASL_PASSWORD_FILE
    "ssl_cafile": "RISKSTREAM_KAFKA_SSL_CAFILE",
    "ssl_certfile": "RISKSTREAM_KAFKA_SSL_CERTFILE",
    "ssl_keyfile": "RISKSTREAM_KAFKA_SSL_KEYFILE",
}
SOURCE = "environment"


@dataclasses.dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = dataclasses.field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "KafkaSecurity":
        """From the `RISKSTREAM_KAFKA_*` variables (see `ENV`); unset means PLAINTEXT, as before."""
        env = os.environ if environ is None else environ
        password = read_secret(ENV["sasl_password"], env)
        fields = {k: env.get(v) or None for k, v in ENV.items() if k != "sasl_password"}
        fields["protocol"] = (fields["protocol"] or "PLAINTEXT").upper()
        if fields["sasl_mechanism"]:
            fields["sasl_mechanism"] = fields["sasl_mechanism"].upper()
        sec = cls(**fields, sasl_password=password.decode("utf-8") if password else None)
        sec.check()
        return sec

    def check(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise OperatorError(SOURCE, ENV["protocol"], f"unknown security protocol {self.protocol!r}",
                                f"use one of {', '.join(PROTOCOLS)}")
        if self.sasl:
            if self.sasl_mechanism not in MECHANISMS:
                raise OperatorError(SOURCE, ENV["sasl_mechanism"], f"SASL mechanism {self.sasl_mechanism!r} is not "
                                    f"supported", f"use one of {', '.join(MECHANISMS)}")
            for name in ("sasl_username", "sasl_password"):
                if not getattr(self, name):
                    raise OperatorError(SOURCE, ENV[name], f"not set, but {self.protocol} needs it",
                                        f"set {ENV[name]}" + (" or its _FILE" if name == "sasl_password" else ""))
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path and not os.path.isfile(path):
                raise OperatorError(path, ENV[name], "no such file", "check the path")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for aiokafka, Faust and the reachability probe (None without TLS)."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.ssl_cafile)
        if self.ssl_certfile:
            ctx.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return ctx

    def _protocol_and_sasl(self) -> dict:
        """The arguments kafka-python and aiokafka spell alike (nothing at all for PLAINTEXT)."""
        if self.protocol == "PLAINTEXT":
            return {}
        out: dict = {"security_protocol": self.protocol}
        if self.sasl:
            out.update(sasl_mechanism=self.sasl_mechanism, sasl_plain_username=self.sasl_username,
                       sasl_plain_password=self.sasl_password)
        return out

    def kafka_python(self) -> dict:
        """Keyword arguments for kafka-python's KafkaProducer, KafkaConsumer and KafkaAdminClient."""
        out = self._protocol_and_sasl()
        if self.tls:
            out.update({k: v for k, v in (("ssl_cafile", self.ssl_cafile), ("ssl_certfile", self.ssl_certfile),
                                          ("ssl_keyfile", self.ssl_keyfile)) if v})
        return out

    def aiokafka(self) -> dict:
        """Keyword arguments for aiokafka's AIOKafkaConsumer, AIOKafkaProducer and AIOKafkaAdminClient."""
        out = self._protocol_and_sasl()
        if self.tls:
            out["ssl_context"] = self.ssl_context()
        return out

    def faust(self) -> dict:
        """Settings for `faust.App`: its broker credentials (Faust passes them to every client it opens)."""
        if self.protocol == "PLAINTEXT":
            return {}
        import faust

        if self.sasl:
            return {"broker_credentials": faust.SASLCredentials(username=self.sasl_username,
                                                                password=self.sasl_password,
                                                                ssl_context=self.ssl_context(),
                                                                mechanism=self.sasl_mechanism)}
        return {"broker_credentials": faust.SSLCredentials(self.ssl_context())}
