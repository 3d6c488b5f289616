"""A synthetic k6 run in InfluxDB, in k6's standard schema, with the summary k6 would have exported.

    python bench/generate_run.py --url http://127.0.0.1:PORT --minutes 20 --vus 1000 --rps 600

At 600 requests/s, one request = 14 samples (k6's 12 HTTP/iteration metrics + checks + http_req_failed), so a
20-minute run is ~10M points. Timestamps are unique per series (k6 stamps all of a request's samples with one
time; different requests get different nanoseconds here), so every point is stored and counts reconcile.
The summary's figures are computed exactly from the generated values, the way k6 computes them.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

# k6's per-request samples: metric -> (kind, value function of (duration_ms, ok)).
REQUEST_TREND_METRICS = ("http_req_blocked", "http_req_connecting", "http_req_tls_handshaking",
                         "http_req_sending", "http_req_waiting", "http_req_receiving")
BATCH_LINES = 100_000


def _percentile(sorted_values: list[float], p: float) -> float:
    """k6's Trend percentile: linear interpolation between the closest ranks."""
    if not sorted_values:
        return 0.0
    k = (len(sorted_values) - 1) * p / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def _lines_for_second(second: int, start_ns: int, rps: int, vus: int, testid: str, rng: random.Random,
                      durations: list[float], failures: list[int]) -> list[str]:
    tags = f"testid={testid},test_type=stress,target=synthetic,scenario=stress"
    lines = [f"vus,{tags} value={vus} {start_ns + second * 1_000_000_000}",
             f"vus_max,{tags} value={vus} {start_ns + second * 1_000_000_000}"]
    step = 1_000_000_000 // rps
    for i in range(rps):
        t = start_ns + second * 1_000_000_000 + i * step + rng.randrange(step)
        # Latency grows with time (a long run that degrades), with a heavy tail.
        duration = rng.lognormvariate(math.log(20 + second / 60), 0.5)
        ok = rng.random() >= 0.002
        status = 200 if ok else 500
        durations.append(duration)
        failures.append(0 if ok else 1)
        rt = f"{tags},name=/api/products,method=GET,status={status},expected_response={'true' if ok else 'false'}"
        lines.append(f"http_reqs,{rt} value=1 {t}")
        lines.append(f"http_req_duration,{rt} value={duration:.4f} {t}")
        lines.append(f"http_req_failed,{rt} value={0 if ok else 1} {t}")
        waiting = duration * 0.9
        for name, value in zip(REQUEST_TREND_METRICS, (0.002, 0.0, 0.0, 0.01, waiting, duration - waiting - 0.01)):
            lines.append(f"{name},{rt} value={value:.4f} {t}")
        lines.append(f"data_sent,{tags} value=120 {t}")
        lines.append(f"data_received,{tags} value=2048 {t}")
        lines.append(f"iterations,{tags} value=1 {t}")
        lines.append(f"iteration_duration,{tags} value={duration + 0.05:.4f} {t}")
        lines.append(f"checks,{tags},check=status\\ ok value={1 if ok else 0} {t}")
    return lines


def _post(url: str, database: str, lines: list[str]) -> None:
    body = gzip.compress("\n".join(lines).encode(), compresslevel=1)
    request = urllib.request.Request(f"{url}/write?db={database}&precision=ns", data=body, method="POST",
                                     headers={"Content-Encoding": "gzip"})
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            if response.status != 204:
                raise RuntimeError(f"write answered {response.status}")
    except urllib.error.HTTPError as exc:  # influxd says why (field type conflict, body too large...)
        raise RuntimeError(f"write answered {exc.code}: {exc.read()[:500]!r}") from None


def generate(url: str, database: str, testid: str, minutes: float, vus: int, rps: int, start_s: float | None = None,
             seed: int = 1) -> dict:
    """Write the run; return k6's --summary-export equivalent plus `points` and `seconds`."""
    rng = random.Random(seed)
    seconds = int(minutes * 60)
    start_ns = int((start_s if start_s is not None else time.time() - seconds - 60) * 1e9)
    durations: list[float] = []
    failures: list[int] = []
    points = 0
    began = time.monotonic()
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = []
        batch: list[str] = []
        for second in range(seconds):
            batch += _lines_for_second(second, start_ns, rps, vus, testid, rng, durations, failures)
            if len(batch) >= BATCH_LINES:
                points += len(batch)
                pending.append(pool.submit(_post, url, database, batch))
                batch = []
                if len(pending) > 4:  # bounded memory: wait for the oldest writes
                    pending.pop(0).result()
        if batch:
            points += len(batch)
            pending.append(pool.submit(_post, url, database, batch))
        for future in pending:
            future.result()
    durations.sort()
    n = len(durations)
    summary = {
        "state": {"testRunDurationMs": seconds * 1000},
        "metrics": {
            "http_reqs": {"count": n, "rate": n / seconds},
            "http_req_duration": {"count": n, "avg": sum(durations) / n, "med": _percentile(durations, 50),
                                  "p(95)": _percentile(durations, 95), "p(99)": _percentile(durations, 99),
                                  "min": durations[0], "max": durations[-1]},
            "http_req_failed": {"passes": sum(failures), "fails": n - sum(failures),
                                "value": sum(failures) / n},
            "checks": {"passes": n - sum(failures), "fails": sum(failures), "value": (n - sum(failures)) / n},
            "iterations": {"count": n, "rate": n / seconds},
            "vus_max": {"value": vus, "min": vus, "max": vus},
            "vus": {"value": vus, "min": vus, "max": vus},
        },
    }
    return {"summary": summary, "points": points, "seconds": seconds, "write_s": round(time.monotonic() - began, 1),
            "start_ms": start_ns // 1_000_000, "end_ms": start_ns // 1_000_000 + seconds * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="InfluxDB 1.x on loopback, e.g. http://127.0.0.1:8086")
    parser.add_argument("--database", default="k6")
    parser.add_argument("--testid", default="synthetic:run:stress:try1")
    parser.add_argument("--minutes", type=float, default=20)
    parser.add_argument("--vus", type=int, default=1000)
    parser.add_argument("--rps", type=int, default=600)
    parser.add_argument("--summary-out", help="write the k6-style summary JSON here")
    args = parser.parse_args()
    from urllib.parse import urlsplit
    import ipaddress

    if not ipaddress.ip_address(urlsplit(args.url).hostname or "0.0.0.0").is_loopback:
        parser.error("--url must be a loopback address")
    result = generate(args.url, args.database, args.testid, args.minutes, args.vus, args.rps)
    if args.summary_out:
        with open(args.summary_out, "w") as out:
            json.dump(result["summary"], out)
    print(json.dumps({k: v for k, v in result.items() if k != "summary"}))


if __name__ == "__main__":
    main()
