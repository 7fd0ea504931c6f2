#!/usr/bin/env python
"""Benchmark the HTML family's sandbox (workflow/teachable/envs/html/sandbox.py): seconds per call.

Runs N calls, each a fresh sandbox, of
  - a bs4 program on a generated page (a table of --rows rows): parse the page, select a cell,
    count the rows, read an attribute (what an agent's tool call does);
  - an empty program (the floor: bwrap, the interpreter, the rlimits and the seccomp filter);
and prints, for each, the median wall seconds with its 95 % distribution-free interval (the order
statistics of scipy.stats.quantile_test), the 90th percentile, the minimum, and the median CPU
seconds (user + system) of the sandboxed interpreter, from its start to the program's end (what
its share of the wall time comes down to on an idle machine; bwrap's own is not in it), with the
load average at the start. With --workers K, the bs4
program also runs from K threads at once (K sandboxes in parallel, each its own uid when root)
and the throughput in calls/s is printed. With --filter-cost, the seccomp filter's share: the
runner as it is against the runner without the lines that load the filter (a variant built here
for the measurement only), calls interleaved, the median of each. Needs `make sandbox` (bwrap
and the site directory).

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_sandbox.py --calls 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))

PROGRAM = """soup = make_soup()
row = soup.select_one("tr[data-sku='sku-7']")
print(row.select_one("td.price").get_text(strip=True), len(soup.select("tbody tr")), row["data-sku"])
"""


def page(rows: int) -> str:
    body = "".join(f"<tr data-sku='sku-{i}'><td class='name'>Item {i}</td><td class='price'>{i * 1.25:.2f}</td></tr>"
                   for i in range(rows))  # fmt: skip
    return f"<html><body><h1>Catalogue</h1><table><tbody>{body}</tbody></table></body></html>"


CPU = "\nimport resource, sys\nu = resource.getrusage(resource.RUSAGE_SELF)\nprint(u.ru_utime + u.ru_stime, file=sys.stderr)\n"


def timed(code: str, html: str, n: int) -> tuple[list[float], list[float]]:
    """Wall seconds per call, the interpreter's CPU seconds per call."""
    from teachable.envs.html.sandbox import run_sandboxed

    wall, cpu = [], []
    for _ in range(n):
        t = time.perf_counter()
        r = run_sandboxed(code + CPU, html)
        wall.append(time.perf_counter() - t)
        if r.exit_code != 0:
            raise SystemExit(f"the benchmark program failed in the sandbox: {r.error}\n{r.stderr}")
        cpu.append(float(r.stderr.split()[-1]))
    return wall, cpu


def summary(name: str, seconds: list[float], cpu: list[float]) -> str:
    from scipy import stats

    med = statistics.median(seconds)
    ci = stats.quantile_test(seconds, q=med, p=0.5).confidence_interval(confidence_level=0.95)
    p90 = statistics.quantiles(seconds, n=10)[-1]
    return (f"{name}: median {med:.3f} s [{ci.low:.3f}, {ci.high:.3f}] (n = {len(seconds)} calls), "
            f"p90 {p90:.3f} s, min {min(seconds):.3f} s"
            f", interpreter CPU {statistics.median(cpu):.3f} s")  # fmt: skip


def filter_cost(html: str, n: int) -> None:
    from teachable.envs.html import sandbox as S

    runner = S.RUNNER
    start, end = runner.index("prog = os.read(bpf"), runner.index('os.write(ready, b"1")')
    unfiltered = runner[:start] + runner[end:].replace("SockFprog, bpf, ctypes, libc, limit, name, prog,",
                                                       "bpf, ctypes, limit, name,")  # fmt: skip
    assert unfiltered != runner and "prctl" not in unfiltered
    wall: dict[tuple[str, str], list[float]] = {}
    try:
        for _ in range(n):
            for variant, text in (("filter loaded", runner), ("no filter", unfiltered)):
                S.RUNNER = text
                for name, code in (("bs4 program", PROGRAM), ("empty program", "pass")):
                    wall.setdefault((name, variant), []).append(timed(code, html, 1)[0][0])
    finally:
        S.RUNNER = runner
    for (name, variant), seconds in wall.items():
        print(f"{name}, {variant}: median {statistics.median(seconds):.3f} s (n = {len(seconds)} calls)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=50, help="timed calls per program (default 50)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    ap.add_argument("--rows", type=int, default=50, help="table rows of the page (default 50)")
    ap.add_argument("--workers", type=int, default=0, help="also run the bs4 program from this many threads at once")
    ap.add_argument("--filter-cost", action="store_true", help="also measure the seccomp filter's share of a call")
    a = ap.parse_args(argv)
    html = page(a.rows)
    timed(PROGRAM, html, a.warmup)  # the first call compiles the seccomp filter
    print(f"page: {len(html)} characters, {a.rows} rows; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(summary("bs4 program", *timed(PROGRAM, html, a.calls)))
    print(summary("empty program", *timed("pass", html, a.calls)))
    if a.workers:
        t = time.perf_counter()
        with ThreadPoolExecutor(a.workers) as ex:
            per = list(ex.map(lambda _: timed(PROGRAM, html, a.calls // a.workers), range(a.workers)))
        wall = time.perf_counter() - t
        seconds, cpu = [s for p in per for s in p[0]], [c for p in per for c in p[1]]
        print(summary(f"bs4 program, {a.workers} at once", seconds, cpu) + f"; {len(seconds) / wall:.2f} calls/s")
    if a.filter_cost:
        filter_cost(html, a.calls)


if __name__ == "__main__":
    main()
