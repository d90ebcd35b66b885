"""Cost of lump matching (docs/methodology.md, "Lumps") in the pairing step, no database.

    .venv/bin/python bench/bench_lumps.py --flows 1000000

Times ``movements.build_rows`` on in-memory cash flows with the lump pass and without
it (the floor, measured in the same run), for three shapes:

- ``paired``: the shape of bench_trace.py: every disbursement has its linked mirror, so
  nothing is left for the lump pass;
- ``lumps``: one group in five holds a lump (one disbursement, three receipts), one in
  five a near miss (sum 5 % off), the rest pairs;
- ``worst``: one (provider, receiver) group whose leftovers cannot match: ``--worst``
  disbursements and as many receipts, on the same few days, each search hitting its bound.
"""

from __future__ import annotations

import random
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import click

from fundtrack.derived.trail import movements
from fundtrack.derived.trail.config import TrailConfig
from fundtrack.derived.trail.movements import CashFlow
from fundtrack.records import FlowKind

DIS, INC = FlowKind.DISBURSEMENT, FlowKind.INCOMING_FUNDS
BASE = date(2023, 1, 1)


def cf(i: int, kind: FlowKind, src: tuple[str, str], dst: tuple[str, str], cents: int,
       day: int) -> CashFlow:
    amt = Decimal(cents).scaleb(-2)
    return CashFlow(i, kind, src, dst, True, amt, "USD", amt, BASE + timedelta(days=day), None,
                    None, None, f"{kind.value}|{day}|{cents}|{i}")


def shape(name: str, n: int, worst: int, rnd: random.Random) -> list[CashFlow]:
    out: list[CashFlow] = []
    if name == "worst":
        for i in range(worst):
            out.append(cf(len(out), DIS, ("P", ""), ("R", ""), 10**8 + rnd.randint(0, 10**6),
                          i % 5))
            out.append(cf(len(out), INC, ("P", ""), ("R", ""), rnd.randint(10**6, 10**7), i % 5))
        return out
    g = 0
    while len(out) < n:
        g += 1
        src, dst = (f"D{g % 997}", f"D{g % 997}-A"), (f"R{g}", f"R{g}-A")
        cents = rnd.randint(10**5, 10**9)
        day = rnd.randint(0, 300)
        kind = g % 5 if name == "lumps" else 4
        if kind == 0:  # a lump: one disbursement, three receipts in other activities
            out.append(cf(len(out), DIS, src, (dst[0], ""), cents * 3, day))
            for k in range(3):
                out.append(cf(len(out), INC, (src[0], ""), (dst[0], f"{dst[1]}{k}"), cents,
                              day + k))
        elif kind == 1:  # near miss: 5 % short
            out.append(cf(len(out), DIS, src, (dst[0], ""), cents * 2, day))
            for _ in range(2):
                out.append(cf(len(out), INC, (src[0], ""), dst, cents * 95 // 100, day + 3))
        else:  # linked pair and an expenditure
            out.append(cf(len(out), DIS, src, dst, cents, day))
            out.append(cf(len(out), INC, src, dst, cents, day + 2))
            out.append(cf(len(out), FlowKind.EXPENDITURE, dst, ("", ""), cents, day + 30))
    return out


def timed(flows: list[CashFlow], cfg: TrailConfig, lumps: bool) -> tuple[float, int]:
    real = movements._lumps
    if not lumps:
        movements._lumps = lambda *a: []  # type: ignore[assignment]
    try:
        t0 = time.perf_counter()
        rows = movements.build_rows(flows, cfg)
        return time.perf_counter() - t0, sum(1 for r in rows if r["method"] == "lump")
    finally:
        movements._lumps = real  # type: ignore[assignment]


@click.command()
@click.option("--flows", default=1_000_000)
@click.option("--worst", default=2_000, help="leftovers per side in the worst-case group")
def main(flows: int, worst: int) -> None:
    cfg = TrailConfig()
    print(f"loadavg {Path('/proc/loadavg').read_text().strip()}")
    for name in ("paired", "lumps", "worst"):
        data = shape(name, flows, worst, random.Random(7))
        floor, _ = timed(data, cfg, lumps=False)
        with_lumps, n = timed(data, cfg, lumps=True)
        print(f"{name:7s} {len(data):>9,} flows: one-to-one only {floor:7.2f} s, with lumps "
              f"{with_lumps:7.2f} s (x{with_lumps / floor:.2f}), {n:,} lump movements")


if __name__ == "__main__":
    main()
