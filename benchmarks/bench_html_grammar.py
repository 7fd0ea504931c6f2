#!/usr/bin/env python
"""Benchmark G's interpreter in process (workflow/teachable/envs/html/grammar.py) against the
sandbox: identity and seconds.

Draws --pages seeded pages (tests/html_pages.py: tables, lists, cards, forms, JSON-LD valid and
not, malformed markup, unicode, odd whitespace, CRLF) and --per-page G programs on each, about
half from the page's menu and half failing (a missing element, a bad selector, a missing JSON
key, JSON that is not, a subscript of the wrong type). Each pair runs in a fresh sandbox and in
process; prints how many results are byte-identical (all fields but ``seconds``), how many the
interpreter left to the sandbox (None), every mismatch, the errors met by kind, and the median
seconds with a 95 % distribution-free interval (scipy.stats.quantile_test's order statistics):
per sandbox call, per program in process on a page already parsed, and per page's first
program (the parse included). Sandbox calls run one at a time unless --workers says otherwise.
Needs `make sandbox`.

    PYTHONPATH=workflow nice -n 10 .venv/bin/python benchmarks/bench_html_grammar.py --pages 30 --per-page 8
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "workflow"), str(ROOT / "tests")]


def median_ci(seconds: list[float]) -> str:
    from scipy import stats

    med = statistics.median(seconds)
    ci = stats.quantile_test(seconds, q=med, p=0.5).confidence_interval(confidence_level=0.95)
    return f"median {med * 1e3:.3f} ms [{ci.low * 1e3:.3f}, {ci.high * 1e3:.3f}] (n = {len(seconds)})"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pages", type=int, default=30, help="seeded pages (default %(default)s)")
    ap.add_argument("--per-page", type=int, default=8, help="programs per page (default %(default)s)")
    ap.add_argument("--seed", type=int, default=7, help="the pairs' seed (default %(default)s)")
    ap.add_argument("--workers", type=int, default=1, help="sandboxes at once (default %(default)s)")
    args = ap.parse_args(argv)

    from html_pages import pairs

    from teachable.envs.html import grammar as G
    from teachable.envs.html.sandbox import run_sandboxed

    cases = pairs(args.pages, args.per_page, seed=args.seed)
    print(f"{len(cases)} (page, program) pairs on {args.pages} pages, seed {args.seed}; load average "
          f"{os.getloadavg()[0]:.1f}")  # fmt: skip

    def sandboxed(case):
        t0 = time.perf_counter()
        result = run_sandboxed(case[1], case[0]).as_dict()
        return result, time.perf_counter() - t0

    with ThreadPoolExecutor(args.workers) as pool:
        expected = list(pool.map(sandboxed, cases))
    same, left, errors, warm, cold = 0, 0, collections.Counter(), [], []
    last_html = None
    for (html, code), (want, _) in zip(cases, expected):
        if html != last_html:
            G._page.cache_clear()
        t0 = time.perf_counter()
        got = G.run_in_process(code, html)
        (cold if html != last_html else warm).append(time.perf_counter() - t0)
        last_html = html
        want = {**want, "seconds": 0.0}
        if want["error"]:
            errors[(re.findall(r"^([A-Za-z_][\w.]*): ", want["stderr"], re.M) or [want["error"]])[-1]] += 1
        if got is None:
            left += 1
        elif got == want:
            same += 1
        else:
            print(f"MISMATCH {code!r}\n  in process: {got}\n  sandbox:    {want}")
    print(f"identical {same} / {len(cases)}, left to the sandbox {left}, mismatched {len(cases) - same - left}")
    print("errors met: " + ", ".join(f"{k} {v}" for k, v in errors.most_common()) + f" (ok: {len(cases) - sum(errors.values())})")
    print(f"sandbox per call ({args.workers} at once): {median_ci([s for _, s in expected])}")
    print(f"in process per program, page parsed: {median_ci(warm)}")
    print(f"in process, a page's first program (parse included): {median_ci(cold)}")
    return 0 if same + left == len(cases) else 1


if __name__ == "__main__":
    sys.exit(main())
