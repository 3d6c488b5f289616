"""The run relay's line filter: every line leaves with exactly this run's system tags; perfpipe's measurements and
lines cut by a newline never pass. The relay's forwarding (credentials added, nothing readable by k6) is shown
with real k6 and influxd in tests/integration/test_exposure.py."""

from __future__ import annotations

import pytest

from perfpipe.core.k6.relay import LineFilter

TAGS = {"testid": "perf_smoke:run1:smoke:try1", "test_type": "smoke", "target": "demo"}
OURS = "testid=perf_smoke:run1:smoke:try1,test_type=smoke,target=demo"


def one(line: str) -> tuple[str, LineFilter]:
    f = LineFilter(TAGS)
    return f.filter(line), f


def test_k6s_own_line_passes_unchanged():
    line = f"http_reqs,name=home,status=200,{OURS} value=1,url=\"http://127.0.0.1/a b\" 1700000000000000000"
    out, f = one(line)
    assert out == line + "\n" and (f.rewritten, f.refused) == (0, 0)


@pytest.mark.parametrize("tags", [
    "name=x,testid=other-run:x:smoke:try1,test_type=smoke,target=demo",   # another run's testid
    "name=x,testid=perf_smoke:run1:smoke:try1,test_type=load,target=demo",  # test_type overridden
    "name=x,testid=perf_smoke:run1:smoke:try1,test_type=smoke,target=prod",  # target overridden
    "name=x,test_type=smoke,target=demo",  # testid missing
    f"name=x,{OURS},testid=other",  # a duplicate
    "name=a\\,testid\\=z,testid=other,test_type=smoke,target=demo",  # escapes in the key
])
def test_system_tags_are_set_to_the_runs_own(tags):
    out, f = one(f"http_reqs,{tags} value=1 1700000000000000000")
    assert f.rewritten == 1
    key = out.split(" ")[0] if "\\ " not in out else out
    tags_out = [t for t in key.replace("\\,", "\0").split(",")[1:]]
    system = sorted(t for t in tags_out if t.split("=", 1)[0] in TAGS)
    assert system == sorted(OURS.split(","))
    assert out.endswith(" value=1 1700000000000000000\n")


@pytest.mark.parametrize("line", [
    f"perf_results,{OURS} verdict=\"pass\" 1",  # a custom metric named like perfpipe's own
    "perf_events,test_type=chaos,target=demo event=\"restore\" 1",
    f"http_reqs,{OURS} url=\"http://x/a",  # a string field cut by a newline
    "just-a-key",
    f",{OURS} value=1 1",
])
def test_perfpipe_measurements_and_broken_lines_are_refused(line):
    out, f = one(line)
    assert out == "" and f.refused == 1


def test_a_newline_smuggled_into_a_tag_value_cannot_write_perf_results():
    body = (f"http_reqs,name=x\nperf_results,target=demo,test_type=smoke verdict=\"pass\" 1,{OURS} value=1 2\n"
            f"http_reqs,{OURS} value=1 3\n")
    out, f = one(body)
    assert "perf_results" not in out
    assert out.count("\n") == 1 and f.refused == 2  # the cut-off head has no fields: refused too
    assert all(line.count("testid=perf_smoke:run1:smoke:try1") == 1 for line in out.splitlines())
