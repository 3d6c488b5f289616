"""perfpipe's own ingestion path (measured in bench/, not wired into the k6 task): a k6 CSV output file
(`--out csv=FILE`, `K6_CSV_TIME_FORMAT=unix_nano`) loaded into InfluxDB in the schema k6's InfluxDB output writes
(measurement = metric name, field `value`, the sample's tags as tags, `url` as a field like k6's default
tags-as-fields), with no two points of one series on the same nanosecond.

Why: InfluxDB 1.x keeps one point per series and timestamp. k6 stamps all of a request's samples with one time,
so two VUs finishing the same request on the same nanosecond collide and one sample silently disappears
(~1 per 100,000-300,000 requests on this stack). Here a colliding timestamp moves on by 1 ns: every sample is
stored, and counts reconcile exactly.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

# k6's CSV columns that are sample tags (the rest: metric_name, timestamp, metric_value, extra_tags, metadata).
TAG_COLUMNS = ("check", "error", "error_code", "expected_response", "group", "method", "name", "proto", "scenario",
               "service", "status", "subproto", "tls_version")
# k6's InfluxDB output writes these tags as fields (its default K6_INFLUXDB_TAGS_AS_FIELDS): not series keys.
FIELD_TAGS = ("url", "vu", "iter")
# How many recent (series, timestamp) pairs are remembered to detect a collision. Samples on the same nanosecond
# come from one k6 flush, written next to each other; a million rows is several flushes even at k6's top rate.
COLLISION_WINDOW = 1_000_000
BATCH_LINES = 50_000


@dataclass
class IngestStats:
    rows: int = 0
    points: int = 0
    moved: int = 0  # timestamps moved by a few ns to keep a colliding sample


def _escape_key(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def _escape_field_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _extra_tags(text: str) -> list[tuple[str, str]]:
    """k6 writes non-system tags as `k=v&k=v` (unescaped)."""
    pairs = []
    for part in text.split("&") if text else ():
        key, _, value = part.partition("=")
        if key:
            pairs.append((key, value))
    return pairs


def _open(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def line_protocol(rows: Iterable[dict[str, str]], stats: IngestStats,
                  window: int = COLLISION_WINDOW) -> Iterator[str]:
    """k6 CSV rows (csv.DictReader) -> InfluxDB line protocol, nanosecond precision, collisions moved apart."""
    recent: set[tuple[str, int]] = set()
    order: deque[tuple[str, int]] = deque()
    for row in rows:
        stats.rows += 1
        tags = [(c, row.get(c) or "") for c in TAG_COLUMNS]
        fields: list[tuple[str, str]] = []
        for key, value in tags[:] + _extra_tags(row.get("extra_tags") or ""):
            if key in FIELD_TAGS:
                fields.append((key, value))
        if row.get("url"):
            fields.append(("url", row["url"]))
        tag_pairs = sorted((k, v) for k, v in tags + _extra_tags(row.get("extra_tags") or "")
                           if v != "" and k not in FIELD_TAGS)
        series = _escape_key(row["metric_name"]) + "".join(f",{_escape_key(k)}={_escape_key(v)}"
                                                            for k, v in tag_pairs)
        timestamp = int(row["timestamp"])
        while (series, timestamp) in recent:
            timestamp += 1
            stats.moved += 1
        recent.add((series, timestamp))
        order.append((series, timestamp))
        if len(order) > window:
            recent.discard(order.popleft())
        field_text = f"value={float(row['metric_value'])!r}" + "".join(
            f",{_escape_key(k)}={_escape_field_string(v)}" for k, v in fields if v != "")
        stats.points += 1
        yield f"{series} {field_text} {timestamp}"


def load_csv(path: str | Path, write: Callable[[list[str]], None], batch_lines: int = BATCH_LINES) -> IngestStats:
    """Stream a k6 CSV file (optionally .gz) into `write(lines)` batches; `write` raises on a refused batch."""
    stats = IngestStats()
    with _open(Path(path)) as handle:
        batch: list[str] = []
        for line in line_protocol(csv.DictReader(handle), stats):
            batch.append(line)
            if len(batch) >= batch_lines:
                write(batch)
                batch = []
        if batch:
            write(batch)
    return stats


def influx_writer(url: str, database: str, username: str | None = None, password: str | None = None,
                  timeout_s: float = 120) -> Callable[[list[str]], None]:
    """A `write` for load_csv: gzip'd line protocol to InfluxDB 1.x /write; any answer but 204 raises."""
    import base64
    import urllib.error
    import urllib.request
    from urllib.parse import urlencode

    from perfpipe.core.errors import InfrastructureError

    endpoint = f"{url.rstrip('/')}/write?{urlencode({'db': database, 'precision': 'ns'})}"
    headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}
    if username:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"

    def write(lines: list[str]) -> None:
        body = gzip.compress("\n".join(lines).encode("utf-8"), compresslevel=1)
        request = urllib.request.Request(endpoint, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            raise InfrastructureError(f"InfluxDB refused a batch of {len(lines)} points: HTTP {exc.code} "
                                      f"{exc.read()[:300]!r}") from None
        except OSError as exc:
            raise InfrastructureError(f"InfluxDB write failed ({url}): {exc}") from None
        if status != 204:
            raise InfrastructureError(f"InfluxDB answered {status} to a batch of {len(lines)} points")

    return write
