"""Draw the pillar sample (tests/fixtures/pillar_sample.csv) from the shared files.

How the sample was drawn, so anyone can draw it again:

1. A fresh SQLite database with every shared file fundtrack imports::

       export FUNDTRACK_DATABASE_URL=sqlite:////tmp/pillars.db
       fundtrack db upgrade
       cd ../shared/data && fundtrack import --quiet \
           $(find iati-activity -name '*.xml' ! -path '*assembled*' | sort) \
           iati-legacy-1.0x/*.xml fts-json/*.json \
           360giving/grantnav-sample_data-2016/*.json 360giving/dataquality-json/*.json
       fundtrack import --quiet tests/fixtures/crs/crs_1973_bulk.txt   # the CRS rows

   (the FTS groupby/plan files and ``1-public-location.json`` are rejected: no flows).
2. Population: current flows except interest payments and loan repayments, one per
   distinct classifier input (source, text, DAC sectors, donor codes, FTS clusters,
   gender marker): a donor's twenty disbursements of one activity are one case to label.
3. Strata: source (iati, fts, crs, giving360) x whether the keyword rules of
   ``tests/fixtures/pillar_rules_keyword.toml`` (the rules before code-gating) classify it
   at all. Allocation :data:`ALLOCATION` (all 16 CRS cases; every CRS case is
   unclassified). Within a stratum, cases sorted by (file, source location, flow id) and
   drawn with ``random.Random(1325).sample``; then :data:`CODED` more IATI cases with a
   DAC 151/152 code or a gender-principal marker (stratum ``iati/gender-or-peace-coded``).
4. Labels (``label_*``, ``reason``) were then written by hand, case by case; this script
   leaves them empty (``--keep`` copies them from an existing sample by ``case``).

Run: ``python bench/pillar_sample_draw.py DATABASE_URL OUT.csv [--keep OLD.csv]``.
"""

from __future__ import annotations

import csv
import random
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from fundtrack.accounting import evaluate
from fundtrack.accounting.classify import classify
from fundtrack.accounting.config import load_file
from fundtrack.accounting.items import load_items
from fundtrack.db import make_engine
from fundtrack.ledger import tables as m

ROOT = Path(__file__).resolve().parents[1]
OLD_RULES = ROOT / "tests/fixtures/pillar_rules_keyword.toml"
SEED = 1325
ALLOCATION = {("iati", True): 70, ("iati", False): 50, ("fts", True): 30, ("fts", False): 25,
              ("giving360", True): 15, ("giving360", False): 20, ("crs", True): 0,
              ("crs", False): 16}
SKIP_KINDS = {"INTEREST_PAYMENT", "LOAN_REPAYMENT"}
#: A last stratum drawn after the others (same generator, continuing): IATI cases not yet
#: drawn with a DAC code of 151 "Government and civil society" or 152 "Conflict, peace and
#: security", or a gender-principal marker. Without it the sample held a single
#: participation case: too few to measure that pillar at all.
CODED = 40


def coded(row: dict[str, Any]) -> bool:
    return row["marker"] == "principal" or any(
        s[:3] in ("151", "152") for s in row["sectors"].split())


def draw(url: str) -> list[dict[str, Any]]:
    eng = make_engine(url)
    f, b = m.Flow.__table__, m.ImportBatch.__table__
    old = load_file(OLD_RULES)
    with eng.connect() as c:
        where = {r.id: (r.importer, r.file_name, r.source_location) for r in c.execute(
            select(f.c.id, b.c.importer, b.c.file_name, f.c.source_location)
            .join(b, b.c.id == f.c.batch_id))}
        items = load_items(c)
    eng.dispose()
    cases: dict[tuple[Any, ...], dict[str, Any]] = {}
    for it in sorted(items, key=lambda i: (where[i.flow_id][1], where[i.flow_id][2] or "",
                                           i.flow_id)):
        if it.kind.name in SKIP_KINDS:
            continue
        source, file_name, location = where[it.flow_id]
        row = evaluate.inputs_row(it)
        key = (source, row["text"], row["sectors"], row["tags"], row["clusters"], row["marker"])
        if key in cases:
            continue
        cases[key] = {"source": source, "file": file_name, "source_location": location or "",
                      "flow_kind": it.kind.name,
                      "external_id": it.extra.get("external_id") or "",
                      "activity": it.activity_identifier or "", **row,
                      "_classified": bool(classify(it, rules=old).why)}
    rng = random.Random(SEED)
    out: list[dict[str, Any]] = []
    for (source, classified), n in ALLOCATION.items():
        pool = [r for r in cases.values()
                if r["source"] == source and r["_classified"] == classified]
        for r in rng.sample(pool, min(n, len(pool))):
            r["stratum"] = f"{source}/{'keyword-classified' if classified else 'unclassified'}"
            out.append(r)
    drawn = {id(r) for r in out}
    pool = [r for r in cases.values()
            if r["source"] == "iati" and id(r) not in drawn and coded(r)]
    for r in rng.sample(pool, min(CODED, len(pool))):
        r["stratum"] = "iati/gender-or-peace-coded"
        out.append(r)
    for i, r in enumerate(out, 1):
        r["case"] = f"P{i:03d}"
    return out


def main() -> None:
    url, dest = sys.argv[1], Path(sys.argv[2])
    keep: dict[str, dict[str, str]] = {}
    if "--keep" in sys.argv:
        with open(sys.argv[sys.argv.index("--keep") + 1], newline="", encoding="utf-8") as fh:
            keep = {r["case"]: r for r in csv.DictReader(fh)}
    rows = draw(url)
    with dest.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=evaluate.COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            old = keep.get(r["case"], {})
            w.writerow({**{c: old.get(c, "") for c in evaluate.LABEL_COLUMNS}, **r})
    print(f"{len(rows)} cases -> {dest}")


if __name__ == "__main__":
    main()
