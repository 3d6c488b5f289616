"""perfpipe.app.rollup against a real influxd: the live rollup plus the tail equals InfluxDB's own query-time grouping,
late samples are counted (the run is rolled again), lost ones stay missing, and the companion rolls while the run
goes on."""

from __future__ import annotations

import random
import threading
import time
import uuid

import pytest

from perfpipe.app import rollup
from perfpipe.app.companions import RollupCompanion
from perfpipe.app.config import build_plan
from perfpipe.app.results import reconcile
from perfpipe.app.targets import resolve_target

pytestmark = pytest.mark.integration


def _lines(testid: str, start_s: float, seconds: int, rps: int, seed: int = 1) -> list[str]:
    """k6's schema for the measurements the rollup reads: vus once a second, three samples per request."""
    rng = random.Random(seed)
    tags = f"testid={testid},test_type=stress,target=synthetic"
    lines = []
    for second in range(seconds):
        base = int((start_s + second) * 1e9)
        lines.append(f"vus,{tags} value={10 + second} {base}")
        for i in range(rps):
            t = base + i * (10**9 // rps) + rng.randrange(1000)
            failed = 1 if rng.random() < 0.05 else 0
            duration = rng.lognormvariate(3 + second / 30, 0.6)
            lines += [f"http_reqs,{tags} value=1 {t}", f"http_req_duration,{tags} value={duration:.4f} {t}",
                      f"http_req_failed,{tags} value={failed} {t}"]
    return lines


def _write(influxdb, lines: list[str]) -> None:
    assert influxdb.get_conn().write_points(lines, protocol="line", time_precision="n", batch_size=20_000)


def _query_time_buckets(influxdb, testid: str, start_ms: int, end_ms: int) -> list[tuple]:
    """What the analyses read before the rollup: GROUP BY time(1s) over the raw samples."""
    where = f"\"testid\" = $testid AND time >= {start_ms}ms AND time < {end_ms}ms GROUP BY time(1s) fill(none)"
    p = {"testid": testid}
    failed = influxdb.query(f'SELECT count("value") AS n, sum("value") AS f FROM "http_req_failed" WHERE {where}', p)
    p95 = {x["time"]: x["p"] for x in
           influxdb.query(f'SELECT percentile("value", 95) AS p FROM "http_req_duration" WHERE {where}', p)}
    vus = {x["time"]: x["v"] for x in influxdb.query(f'SELECT max("value") AS v FROM "vus" WHERE {where}', p)}
    return [(x["time"] / 1000, x["n"], x["f"], p95.get(x["time"]), vus.get(x["time"])) for x in failed]


@pytest.fixture
def run(influxdb):
    """A 40-second run, 50 requests/s, written a few minutes in the past."""
    testid = f"rollup:{uuid.uuid4().hex[:8]}"
    start_s = int(time.time()) - 300
    _write(influxdb, _lines(testid, start_s, 40, 50))
    return testid, start_s, 40 * 50


def _roll_live(influxdb, testid: str, start_s: int, up_to_s: int) -> int:
    """What RollupCompanion does during the run: 10-second steps, state after each."""
    start_ms = start_s * 1000
    rolled_to = rollup.roll_start_ms(start_ms, 1)
    while rolled_to + 10_000 <= (start_s + up_to_s) * 1000:
        rollup.roll(influxdb, testid, rolled_to, rolled_to + 10_000, 1)
        rolled_to += 10_000
        rollup.write_state(influxdb, testid, start_ms, 1, rolled_to)
    return rolled_to


def test_live_steps_plus_tail_equal_query_time_grouping(influxdb, run):
    testid, start_s, requests = run
    _roll_live(influxdb, testid, start_s, 25)
    assert rollup.read_state(influxdb, testid) == (1, (start_s + 20) * 1000)

    rolled = rollup.complete_rollup(influxdb, testid, requests, planned_duration_s=40)

    assert not rolled.rerolled
    assert (rolled.stored_reqs, rolled.stored_durations) == (requests, requests)
    assert len(rolled.buckets) == 40 and rolled.bucket_s == 1
    expected = _query_time_buckets(influxdb, testid, start_s * 1000, (start_s + 41) * 1000)
    assert [(b.t, b.requests, b.failed, b.p95_ms, b.vus) for b in rolled.buckets] == expected
    assert rollup.read_state(influxdb, testid) == (1, (start_s + 40 + rollup.RUN_MARGIN_S) * 1000)


def test_requests_before_the_first_and_after_the_last_vus_sample_are_counted(influxdb, run):
    """k6 samples `vus` once a second: a run's first requests finish before its first `vus` sample, its last ones
    (graceful stop) after the last."""
    testid, start_s, requests = run
    tags = f"testid={testid},test_type=stress,target=synthetic"
    _write(influxdb, [f"{name},{tags} value={value} {int(t * 1e9)}" for t in (start_s - 0.7, start_s + 41.5)
                      for name, value in (("http_reqs", 1), ("http_req_duration", 12.5), ("http_req_failed", 0))])
    _roll_live(influxdb, testid, start_s, 25)

    rolled = rollup.complete_rollup(influxdb, testid, requests + 2)

    assert not rolled.rerolled and rolled.stored_reqs == requests + 2


def test_samples_arriving_after_their_bucket_was_rolled_are_counted(influxdb, run):
    testid, start_s, requests = run
    _roll_live(influxdb, testid, start_s, 40)
    # 30 requests of second 5 arrive late (a slow write): their bucket was rolled long ago.
    _write(influxdb, _lines(testid, start_s + 5.0001, 1, 30, seed=7)[1:])

    rolled = rollup.complete_rollup(influxdb, testid, requests + 30)

    assert rolled.rerolled
    assert rolled.stored_reqs == requests + 30
    assert reconcile(requests + 30, min(rolled.stored_reqs, rolled.stored_durations))["metrics_complete"]
    assert [b.requests for b in rolled.buckets if b.t == start_s + 5] == [80]


def test_lost_samples_stay_missing_after_rolling_again(influxdb, run):
    testid, start_s, requests = run
    _roll_live(influxdb, testid, start_s, 40)

    rolled = rollup.complete_rollup(influxdb, testid, requests + 500)

    assert rolled.rerolled and rolled.stored_reqs == requests
    assert not reconcile(requests + 500, rolled.stored_reqs)["metrics_complete"]


def test_without_a_live_rollup_the_gate_rolls_the_whole_run(influxdb, run):
    testid, start_s, requests = run
    assert rollup.read_state(influxdb, testid) is None

    rolled = rollup.complete_rollup(influxdb, testid, requests, planned_duration_s=40)

    assert not rolled.rerolled and rolled.stored_reqs == requests and len(rolled.buckets) == 40


def test_an_unknown_testid_has_no_run(influxdb):
    rolled = rollup.complete_rollup(influxdb, "rollup:never-ran", 100)
    assert rolled.buckets == [] and rolled.stored_reqs == 0


def test_the_companion_rolls_while_samples_arrive(influxdb, monkeypatch):
    monkeypatch.setattr(rollup, "LIVE_LAG_S", 2)
    monkeypatch.setattr(rollup, "LIVE_EVERY_S", 1)
    testid = f"rollup:live:{uuid.uuid4().hex[:8]}"
    start_s = int(time.time())
    stop = threading.Event()

    def k6_like_writer() -> None:  # one second of samples, pushed a second later, as k6 does
        second = 0
        while not stop.is_set() and second < 30:
            while time.time() < start_s + second + 1 and not stop.is_set():
                time.sleep(0.05)
            _write(influxdb, _lines(testid, start_s + second, 1, 40, seed=second))
            second += 1

    target = resolve_target({"name": "synthetic", "base_url": "http://127.0.0.1:9", "requests": [{"path": "/"}]})
    plan = build_plan("load", target, "quick")  # the companion reads only its test type and target name
    writer = threading.Thread(target=k6_like_writer, daemon=True)
    companion = RollupCompanion(plan, testid)
    writer.start()
    companion.start()
    time.sleep(9)
    stop.set()
    writer.join(5)
    companion.stop()
    companion.join(10)

    assert companion.rolls >= 2
    bucket_s, rolled_to = rollup.read_state(influxdb, testid)
    assert bucket_s == 1 and rolled_to >= (start_s + 3) * 1000
    written = influxdb.query('SELECT count("value") AS n FROM "http_reqs" WHERE "testid" = $t', {"t": testid})[0]["n"]
    rolled = rollup.complete_rollup(influxdb, testid, written)
    assert not rolled.rerolled and rolled.stored_reqs == written
