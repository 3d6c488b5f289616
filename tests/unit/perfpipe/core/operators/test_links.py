"""perfpipe.core.operators.links: the Grafana k6-run dashboard link of a task's run."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

from perfpipe.core.operators.links import GrafanaRunLink, grafana_run_url

STARTED = datetime(2026, 3, 1, 10, 0, 0, tzinfo=timezone.utc)
ENDED = datetime(2026, 3, 1, 10, 5, 0, tzinfo=timezone.utc)
TESTID = "perf_smoke:manual__2026-03-01T10:00:00+00:00:smoke:try1"


def test_the_link_selects_the_testid_and_pads_the_runs_window():
    query = parse_qs(urlsplit(grafana_run_url(TESTID, STARTED, ENDED)).query)
    assert query["var-testid"] == [TESTID]  # colons and '+' survive the round trip
    start_ms, end_ms = int(query["from"][0]), int(query["to"][0])
    assert start_ms < STARTED.timestamp() * 1000 and end_ms > ENDED.timestamp() * 1000
    assert end_ms - start_ms < (ENDED - STARTED).total_seconds() * 1000 + 60_000  # padded, not a whole day


def test_a_run_still_going_ends_now():
    assert parse_qs(urlsplit(grafana_run_url(TESTID, STARTED, None)).query)["to"] == ["now"]


def test_the_grafana_url_is_given():
    url = urlsplit(grafana_run_url(TESTID, STARTED, ENDED, "http://grafana.internal:3000/"))
    assert (url.netloc, url.path) == ("grafana.internal:3000", "/d/perfpipe-k6-run/k6-run")  # no '//' from the '/'


def test_without_a_grafana_url_the_link_points_at_the_local_one():
    assert urlsplit(grafana_run_url(TESTID, STARTED, ENDED, "")).netloc == "127.0.0.1:3000"


def test_the_operator_link_is_the_url_the_run_kept_or_nothing():
    link = GrafanaRunLink()
    assert link.get_link(SimpleNamespace(grafana_url="http://g/d/x"), ti_key=None) == "http://g/d/x"
    assert link.get_link(SimpleNamespace(), ti_key=None) == ""
