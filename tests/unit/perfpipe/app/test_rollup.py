"""The pure parts of perfpipe.app.rollup: bucket alignment, how far the live rollup may go, window sums."""

from __future__ import annotations

from perfpipe.app.rollup import Bucket, align_down, align_up, live_cutoff_ms, summed


def test_buckets_align_to_multiples_of_their_width_like_influxdb_group_by_time():
    assert align_down(1_700_000_001_234, 1) == 1_700_000_001_000
    assert align_down(1_700_000_001_234, 2) == 1_700_000_000_000
    assert align_up(1_700_000_001_234, 2) == 1_700_000_002_000
    assert align_up(1_700_000_002_000, 2) == 1_700_000_002_000


def test_live_cutoff_stays_a_lag_behind_the_newest_sample_and_the_clock():
    newest, now = 1_000_000_000, 1_000_003_000
    assert live_cutoff_ms(newest, now, 1, lag_s=15) == 999_985_000
    # A clock behind the newest sample (k6 on another host): the clock bounds it.
    assert live_cutoff_ms(newest, newest - 5_000, 1, lag_s=15) == 999_980_000
    # Whole buckets only.
    assert live_cutoff_ms(newest + 1_500, now + 10_000, 2, lag_s=15) == 999_986_000


def test_window_sums_are_exact_for_counts_and_weight_p95_by_requests():
    buckets = [Bucket(t=0, requests=100, failed=1, p95_ms=10.0), Bucket(t=1, requests=300, failed=3, p95_ms=30.0),
               Bucket(t=2, requests=0)]
    window = summed(buckets, 1)
    assert window["requests"] == 400 and window["error_rate"] == 0.01
    assert window["p95_ms"] == 25.0  # (100*10 + 300*30) / 400
    assert window["rps"] == round(400 / 3, 3) and window["seconds"] == 3


def test_an_empty_window_has_no_rates():
    assert summed([], 2) == {"requests": 0, "error_rate": None, "p95_ms": None, "rps": None, "seconds": 0}
