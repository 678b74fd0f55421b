"""Issue 15 acceptance: the risk console driven by headless Chromium (Debian's chromium + chromedriver, through
Selenium's WebDriver) against a live pipeline on Apache Kafka: worker, actuator and `riskstream console` processes.

It signs in as an operator; every page renders with data and the DOM counts match the topics (decisions, commands
and events on the overview, one account's timeline, the review queue, the held commands); a "confirm fraud" in the
review queue and a breaker release each produce the signed control message (control topic), the actuator's audit
record and the command (commands topic), and the verdict a label for the trainer (labels topic); clear and hold are
audited and send nothing; a policy-closed line's page says why (rule, reasons, the features rebuilt behind it); a
viewer's action is refused with 403. A screenshot of each page goes to the test's tmp dir (and to
$RISKSTREAM_CONSOLE_SHOTS when set).

A missing chromium is a skip here, and a failure in CI (RISKSTREAM_TEST_BROKER=kafka, tests/conftest.py).
"""

from __future__ import annotations

import collections
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest

from riskstream.core.contracts import encode_event, make_event
from riskstream.core.privacy import Pseudonymizer
from riskstream.ops.console.auth import hash_password
from riskstream.ops.orchestrate import Proc, decode_values, read_topic
from tests.support import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.kafka]

CHROMEDRIVER = "/usr/bin/chromedriver"
FIXTURE_BACKTEST = Path(__file__).resolve().parents[1] / "fixtures" / "backtest-small.json"
POLICY = """\
name: e2e-console
version: 1
mode: live
segments:
  credit_line: {thresholds: {warn_pd: 0.1, limit_pd: 0.2, close_pd: 0.4}}
action_order: [CLOSE, REVIEW]
actions:
  CLOSE: {cooldown: 0s, hysteresis: false, grace: 72h}
  REVIEW: {cooldown: 24h, hysteresis: false, queue: e2e}
rules:
  - id: login-close
    product: credit_line
    when: [{fact: failed_logins_24h, op: ">=", value: 3}]
    action: CLOSE
    immediate: true
    reason: three failed logins in a day (console end-to-end policy)
  - id: review-once-a-day
    product: credit_line
    when: [{fact: pd, op: ">=", value: 0}]
    action: REVIEW
    reason: every line is reviewed once a day (console end-to-end policy)
"""
PASSWORD = "console-e2e-password"


@pytest.fixture
def chromium():
    """Before the pipeline is started: a missing browser is a skip here (and a failure in CI)."""
    if not (shutil.which("chromium") and os.path.exists(CHROMEDRIVER)):
        pytest.skip("needs chromium and chromedriver (apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("needs chromium's driver client selenium (pip install -e '.[test]')")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1100",
                "--disable-extensions", "--no-first-run"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)  # Service(path): no selenium-manager


def _events(ids, t0, etype, payload, step):
    return [(acc.encode(), encode_event(make_event(etype, acc, payload, event_time=t0 + 1000 * step)))
            for acc in ids]


def _produce(bootstrap, topic, records):
    import confluent_kafka
    p = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random",
                                  "max.in.flight.requests.per.connection": 1})
    for k, v in records:
        p.produce(topic, key=k, value=v)
    assert p.flush(30) == 0


def _audit(path: Path) -> list[dict]:
    try:
        return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]
    except OSError:
        return []


def test_console_in_chromium(chromium, kafka_pipeline, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    t_start = time.monotonic()
    pipeline = kafka_pipeline
    topic = pipeline.topic
    policy = tmp_path / "console.yaml"
    policy.write_text(POLICY)
    audit = tmp_path / "actuator-audit.jsonl"
    shots = tmp_path / "shots"
    shots.mkdir()
    port = _free_port()
    users = f"ops:operator:{hash_password(PASSWORD, iterations=20_000)};vera:viewer:" \
            f"{hash_password(PASSWORD, iterations=20_000)}"
    worker = pipeline.start("worker", "--policy", str(policy), "--audit-log", str(tmp_path / "worker-audit.jsonl"))
    # 20 CLOSE a minute over 4 partitions: 5 in one partition trip the breaker, and it trips the others.
    actuator = pipeline.start("actuator", "--audit-log", str(audit), "--breaker-max-count", "20", name="actuator")
    # The console is no Faust app: a plain `riskstream console` process, stopped with the pipeline.
    console = Proc("console", ["console", "--bootstrap", pipeline.bootstrap, "--topology", str(pipeline.topology_path),
                               "--audit", str(audit), "--port", str(port), "--session-ttl", "10m"],
                   pipeline.cluster.work_dir, env={"RISKSTREAM_CONSOLE_USERS": users})
    pipeline.cluster.procs.append(console)
    base = f"http://127.0.0.1:{port}"
    wait_for("console serving", lambda: "riskstream console: serving" in console.log_text() or not console.alive(),
             timeout=30)
    assert console.alive(), console.log_text()
    worker.wait_ready(timeout=120)
    actuator.wait_ready(timeout=120)
    print(f"pipeline and console up in {time.monotonic() - t_start:.1f}s")

    t0 = int(time.time() * 1000) - 1_800_000
    review_ids = [f"REV{i:03d}" for i in range(6)]
    flood_ids = [f"BRK{i:03d}" for i in range(30)]
    opened = {"product": "credit_line", "segment": "retail", "limit": 1000.0, "currency": "EUR"}
    _produce(pipeline.bootstrap, topic("riskstream.events.behaviour"),
             _events(review_ids + flood_ids, t0, "account_opened", opened, 0)
             + _events(review_ids, t0, "drawdown", {"amount": 300.0}, 1)
             + _events(review_ids, t0, "drawdown", {"amount": 650.0}, 2))  # a spike: the challenger reviews too

    def decisions():
        return [d for d in decode_values(read_topic(pipeline.bootstrap, topic("riskstream.decisions"), idle_s=0.5))
                if d.get("decision_id") and not d.get("kind")]

    def commands():
        return decode_values(read_topic(pipeline.bootstrap, topic("riskstream.commands"), idle_s=0.5))

    def controls():
        return decode_values(read_topic(pipeline.bootstrap, topic("riskstream.control"), idle_s=0.5))

    wait_for("a REVIEW decision for each of the 36 lines",
             lambda: len({d["account_id"] for d in decisions() if d["action"] == "REVIEW"
                          and d.get("role") == "champion"}) == 36, timeout=90, every=1.0)

    driver = _browser()
    wait = WebDriverWait(driver, 30, poll_frequency=0.25)
    text = lambda css: driver.find_element(By.CSS_SELECTOR, css).text  # noqa: E731

    def shot(name):  # the whole page: the viewport grows to the document's height for the picture (DevTools)
        path = shots / f"{name}.png"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": 1400, "height": min(max(height, 600), 4000), "deviceScaleFactor": 1, "mobile": False})
        driver.save_screenshot(str(path))
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        return path

    try:
        # -- sign-in: no session -> the sign-in page --------------------------------------------------------------
        driver.get(base + "/review")
        assert driver.current_url.startswith(base + "/login")
        try:
            urllib.request.urlopen(base + "/api/overview", timeout=5)
            raise AssertionError("/api/overview answered without a session")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
        shot("0-login")
        driver.find_element(By.ID, "user").send_keys("ops")
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "signin").click()
        wait.until(lambda d: d.current_url == base + "/review")
        assert "ops (operator)" in text("#who")

        # -- review queue: every champion REVIEW waiting, oldest first; confirm fraud on one -----------------------
        waiting = [d for d in decisions() if d["action"] == "REVIEW" and d.get("role") == "champion"]
        wait.until(lambda d: (driver.refresh() or True) and text("#queue-n") == str(len(waiting)))
        rows = driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
        assert len(rows) == len(waiting) == 36
        ps = Pseudonymizer.from_env()
        target = review_ids[0]
        target_p = ps.pseudonym(target)
        row = next(r for r in rows if target_p in r.text)
        target_decision = next(d for d in waiting if d["account_id"] == target)
        assert target_decision["decision_id"] in row.text
        assert all(i not in driver.page_source for i in review_ids + flood_ids), "a raw account id on the page"
        shot("3-review")
        row.find_element(By.CSS_SELECTOR, "input[name=note]").send_keys("customer confirmed the takeover")
        row.find_element(By.CSS_SELECTOR, "button[value=fraud]").click()
        wait.until(lambda d: "Published the signed review control message" in text("#flash"))
        review_cid = text("#flash").split("control message ", 1)[1].split(" ", 1)[0]
        msg = wait_for("the review control message on the control topic",
                       lambda: next((m for m in controls() if m.get("control_id") == review_cid), None), timeout=30)
        assert (msg["kind"], msg["verdict"], msg["decision_id"], msg["by"]) == (
            "review", "fraud", target_decision["decision_id"], "ops")
        assert msg["signatures"] and msg["features"] == target_decision["features"]
        close = wait_for("the CLOSE command of the fraud verdict",
                         lambda: next((c for c in commands() if c["decision_id"] == f"review:{review_cid}"), None),
                         timeout=60)
        assert (close["action"], close["account_id"]) == ("CLOSE", target)
        rec = wait_for("the verdict's audit record", lambda: next(
            (r for r in _audit(audit) if r["kind"] == "override" and r["payload"].get("control_id") == review_cid),
            None), timeout=30)
        assert rec["payload"]["verdict"] == "fraud" and rec["payload"]["by"] == "ops"
        label = wait_for("the verdict's label for the trainer", lambda: next(
            (x for x in decode_values(read_topic(pipeline.bootstrap, topic("riskstream.labels"), idle_s=0.5))
             if x.get("control_id") == review_cid), None), timeout=30)
        assert (label["label"], label["outcome"], label["source"]) == (True, "fraud", "review")
        assert label["features"] == target_decision["features"] and label["entity"] == target_p
        print(f"review: fraud verdict {review_cid} -> control message signed by "
              f"{[s['key_id'] for s in msg['signatures']]}, audit #{rec['seq']} ({rec['payload']['outcome']}), "
              f"command {close['command_id']} {close['action']}, label {label['label']} on the labels topic")
        driver.refresh()
        wait.until(lambda d: (driver.refresh() or True) and text("#queue-n") == str(len(waiting) - 1))

        # clear (leaves the queue, a label False, no command) and hold (stays queued, marked), on two more lines
        for account, verdict in ((review_ids[1], "clear"), (review_ids[2], "hold")):
            row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
                       if ps.pseudonym(account) in r.text)
            row.find_element(By.CSS_SELECTOR, "input[name=note]").send_keys(f"{verdict}: checked with the customer")
            row.find_element(By.CSS_SELECTOR, f"button[value={verdict}]").click()
            wait.until(lambda d: f"({verdict})" in text("#flash"))
            cid = text("#flash").split("control message ", 1)[1].split(" ", 1)[0]
            rec = wait_for(f"the {verdict} verdict's audit record", lambda: next(
                (r for r in _audit(audit) if r["kind"] == "override" and r["payload"].get("control_id") == cid),
                None), timeout=30)
            assert rec["payload"]["outcome"].endswith("no command"), rec
            assert not [c for c in commands() if c["decision_id"] == f"review:{cid}"]
        wait.until(lambda d: (driver.refresh() or True) and text("#queue-n") == str(len(waiting) - 2))
        held_row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
                        if ps.pseudonym(review_ids[2]) in r.text)
        assert "on hold by ops" in held_row.text
        shot("3-review-after-verdicts")
        labels = decode_values(read_topic(pipeline.bootstrap, topic("riskstream.labels"), idle_s=0.5))
        assert sorted(x["outcome"] for x in labels if x.get("source") == "review") == ["clear", "fraud"]

        # -- account page: looked up by id (POST), URL carries the pseudonym; timeline matches the topics ----------
        driver.get(base + "/account")
        driver.find_element(By.ID, "account_id").send_keys(target)
        driver.find_element(By.ID, "lookup-go").click()
        wait.until(lambda d: d.current_url == f"{base}/account/{target_p}")
        assert target not in driver.current_url
        wait.until(lambda d: (driver.refresh() or True) and "override review" in text("#timeline"))
        n_dec = len([d for d in decisions() if d["account_id"] == target])
        n_cmd = len([c for c in commands() if c["account_id"] == target])
        wait.until(lambda d: (driver.refresh() or True) and text("#timeline-decisions") == str(n_dec))
        assert text("#entered") == target and "CLOSED" in text("#line-state")
        why = text("#why-closed")
        assert "review fraud by ops" in why and review_cid in why and target_decision["decision_id"] in why
        assert len(driver.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")) >= n_dec + n_cmd
        assert "✓ chain verified" in text("#timeline") and "✓ verified" in text("#audit-files")
        assert driver.find_elements(By.CSS_SELECTOR, "#chart-pd polyline")
        feats = driver.find_elements(By.CSS_SELECTOR, "details.features summary")
        assert feats and all("feature hash matches" in f.text for f in feats) and len(feats) == n_dec
        shot("2-account")

        # -- breaker: a flood of closes trips it; the held commands are released through the UI -------------------
        flood = []
        for step in (3, 4, 5):
            flood += _events(flood_ids, t0, "login_failed", {"device_fingerprint": "fp-e2e", "ip": "203.0.113.5"},
                             step)
        _produce(pipeline.bootstrap, topic("riskstream.events.behaviour"), flood)

        def held_in_audit():
            recs = _audit(audit)
            held = {r["payload"]["command_id"] for r in recs if r["kind"] == "breaker"
                    and r["payload"].get("event") == "held"}
            return held
        wait_for("30 CLOSE held by the tripped breaker", lambda: len(held_in_audit()) >= 30, timeout=90, every=0.5)
        held = held_in_audit()
        driver.get(base + "/breaker")
        wait.until(lambda d: (driver.refresh() or True) and text("#held-n") == str(len(held)))
        assert driver.find_elements(By.ID, "breaker-open")
        assert len(driver.find_elements(By.CSS_SELECTOR, "#held tbody tr")) == len(held) == 30
        assert "CLOSE" in text("#held-by-action") and "three failed logins" in text("#held-by-reason")
        shot("4-breaker")
        driver.find_element(By.ID, "breaker-reason").send_keys("flood checked: a real credential-stuffing attack")
        driver.find_element(By.ID, "breaker-release").click()
        wait.until(lambda d: "Published the signed breaker_reset control message" in text("#flash"))
        reset_cid = text("#flash").split("control message ", 1)[1].split(" ", 1)[0]
        reset = wait_for("the breaker_reset control message", lambda: next(
            (m for m in controls() if m.get("control_id") == reset_cid), None), timeout=30)
        assert (reset["kind"], reset["how"], reset["by"]) == ("breaker_reset", "release", "ops") and reset["signatures"]
        wait_for("the 30 released CLOSE commands", lambda: held <= {c["command_id"] for c in commands()},
                 timeout=60, every=0.5)
        resets = wait_for("one reset audit record a partition", lambda: [
            r for r in _audit(audit) if r["kind"] == "breaker" and r["payload"].get("event") == "reset"
            and r["payload"].get("by") == "ops"] if len([r for r in _audit(audit) if r["kind"] == "breaker" and
                                                        r["payload"].get("event") == "reset"]) >= 4 else None,
            timeout=30)
        released = {c for r in resets for c in r["payload"]["command_ids"]}
        assert released == held
        print(f"breaker: {len(held)} CLOSE held; release {reset_cid} signed by "
              f"{[s['key_id'] for s in reset['signatures']]} -> {len(resets)} reset audit records, "
              f"{len(released)} commands released onto the topic")
        wait.until(lambda d: (driver.refresh() or True) and text("#held-n") == "0")
        assert driver.find_elements(By.ID, "breaker-closed")
        shot("4-breaker-released")

        # "why was this line closed?": a flooded line's CLOSE, its rule and the features rebuilt behind it
        driver.get(base + "/account")
        driver.find_element(By.ID, "account_id").send_keys(flood_ids[0])
        driver.find_element(By.ID, "lookup-go").click()
        wait.until(lambda d: d.current_url == f"{base}/account/{ps.pseudonym(flood_ids[0])}")
        wait.until(lambda d: (driver.refresh() or True) and "CLOSED" in text("#line-state"))
        why = text("#why-closed")
        assert "rule login-close" in why and "three failed logins" in why, why
        feats = driver.find_elements(By.CSS_SELECTOR, "details.features summary")
        assert any("rebuilt from the valid events" in f.text for f in feats)
        assert all("feature hash matches" in f.text for f in feats), [f.text for f in feats]
        shot("2-account-closed-by-policy")

        # -- overview: live counts equal the topics' ----------------------------------------------------------------
        driver.get(base + "/")
        all_dec, all_cmd = decisions(), commands()
        wait.until(lambda d: text("#kpi-decisions") == f"{len(all_dec):,}" and text("#kpi-commands") ==
                   f"{len(all_cmd):,}")
        assert text("#kpi-events") == str(len(review_ids) * 3 + len(flood_ids) * 4)  # the upstream records
        by_role = collections.Counter(d.get("role") for d in all_dec)
        assert by_role["champion"] and by_role["challenger"], by_role
        assert "e2e-console" in text("#by-policy") and "retail-challenger" in text("#by-policy")
        assert driver.find_elements(By.CSS_SELECTOR, "#chart-decisions rect[data-series]")
        assert driver.find_elements(By.CSS_SELECTOR, "#chart-policies rect[data-group]")
        assert "e2e-console" in text("#versions")
        updated = driver.find_element(By.TAG_NAME, "body").get_attribute("data-updated")
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-updated") != updated)
        shot("1-overview")
        print(f"overview: decisions {len(all_dec)} ({dict(by_role)}), commands {len(all_cmd)} "
              f"{dict(collections.Counter(c['action'] for c in all_cmd))}: equal on the page")

        # -- backtest: a `riskstream backtest` report, champion beside challenger ----------------------------------
        driver.get(base + "/backtest")
        driver.find_element(By.ID, "bt-file").send_keys(str(FIXTURE_BACKTEST))
        driver.find_element(By.ID, "bt-open").click()
        report = orjson.loads(FIXTURE_BACKTEST.read_bytes())
        wait.until(lambda d: d.find_elements(By.ID, "bt-table"))
        head = text("#bt-table thead")
        assert len(report["policies"]) == 2
        assert all(f"{p['policy']} v{p['version']}" in head for p in report["policies"])
        assert driver.find_elements(By.CSS_SELECTOR, "#chart-sweep polyline")
        shot("5-backtest")

        # -- a viewer: sees the pages, no action is offered, and a forged one is refused with 403 ------------------
        driver.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click()
        wait.until(lambda d: d.current_url.startswith(base + "/login"))
        driver.find_element(By.ID, "user").send_keys("vera")
        driver.find_element(By.ID, "password").send_keys(PASSWORD)
        driver.find_element(By.ID, "signin").click()
        wait.until(lambda d: not d.current_url.startswith(base + "/login"))  # signed in: the session cookie is set
        driver.get(base + "/review")
        assert text("#queue-n") == str(len(waiting) - 2) and "Confirm fraud" not in driver.page_source
        driver.get(base + "/breaker")
        assert not driver.find_elements(By.ID, "breaker-release")
        status = driver.execute_async_script("""
            var done = arguments[arguments.length - 1];
            var token = document.querySelector('input[name=csrf]').value;
            fetch('/breaker', {method: 'POST', body: new URLSearchParams({csrf: token, how: 'drop', reason: 'x'})})
              .then(function (r) { done(r.status); });""")
        assert status == 403
        n_resets = len([m for m in controls() if m.get("kind") == "breaker_reset"])
        assert n_resets == 1, "the viewer's refused action published a control message"
    finally:
        driver.quit()
    out = os.environ.get("RISKSTREAM_CONSOLE_SHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        for p in shots.glob("*.png"):
            shutil.copy(p, Path(out) / p.name)
    assert worker.alive() and actuator.alive() and console.alive()
    print(f"console end to end in {time.monotonic() - t_start:.1f}s; screenshots in {shots}")
