#!/usr/bin/env python
"""Benchmark the HTML family's sandbox (workflow/teachable/envs/html/sandbox.py): seconds per call.

Runs N calls, each a fresh sandbox, of
  - a bs4 program on a generated page (a table of --rows rows): parse the page, select a cell,
    count the rows, read an attribute (what an agent's tool call does);
  - an empty program (the floor: bwrap, the interpreter, the rlimits and the seccomp filter);
and prints, for each, the median with its 95 % distribution-free interval (the order statistics
of scipy.stats.quantile_test), the 90th percentile and the minimum. With --workers K, the bs4
program also runs from K threads at once (K sandboxes in parallel, each its own uid when root)
and the throughput in calls/s is printed. Needs `make sandbox` (bwrap and the site directory).

    PYTHONPATH=workflow .venv/bin/python benchmarks/bench_sandbox.py --calls 50
"""

from __future__ import annotations

import argparse
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


def timed(code: str, html: str, n: int) -> list[float]:
    from teachable.envs.html.sandbox import run_sandboxed

    out = []
    for _ in range(n):
        t = time.perf_counter()
        r = run_sandboxed(code, html)
        out.append(time.perf_counter() - t)
        if r.exit_code != 0:
            raise SystemExit(f"the benchmark program failed in the sandbox: {r.error}\n{r.stderr}")
    return out


def summary(name: str, seconds: list[float]) -> str:
    from scipy import stats

    med = statistics.median(seconds)
    ci = stats.quantile_test(seconds, q=med, p=0.5).confidence_interval(confidence_level=0.95)
    p90 = statistics.quantiles(seconds, n=10)[-1]
    return (f"{name}: median {med:.3f} s [{ci.low:.3f}, {ci.high:.3f}] (n = {len(seconds)} calls), "
            f"p90 {p90:.3f} s, min {min(seconds):.3f} s")  # fmt: skip


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=50, help="timed calls per program (default 50)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    ap.add_argument("--rows", type=int, default=50, help="table rows of the page (default 50)")
    ap.add_argument("--workers", type=int, default=0, help="also run the bs4 program from this many threads at once")
    a = ap.parse_args(argv)
    html = page(a.rows)
    timed(PROGRAM, html, a.warmup)
    print(f"page: {len(html)} characters, {a.rows} rows")
    print(summary("bs4 program", timed(PROGRAM, html, a.calls)))
    print(summary("empty program", timed("pass", html, a.calls)))
    if a.workers:
        t = time.perf_counter()
        with ThreadPoolExecutor(a.workers) as ex:
            per = list(ex.map(lambda _: timed(PROGRAM, html, a.calls // a.workers), range(a.workers)))
        wall = time.perf_counter() - t
        calls = sum(map(len, per))
        print(summary(f"bs4 program, {a.workers} at once", [s for p in per for s in p])
              + f"; {calls / wall:.2f} calls/s")


if __name__ == "__main__":
    main()
