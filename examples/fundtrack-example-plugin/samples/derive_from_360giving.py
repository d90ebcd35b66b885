"""Derive the sample grants CSVs from real 360Giving data (run by hand; output committed).

The samples are real grants: the Baring Foundation's and the Wolfson Foundation's grants
as published in 360Giving JSON (ThreeSixtyGiving/grantnav ``sample_data/``, copied into
``../shared/data/360giving/grantnav-sample_data-2016``), rewritten in the "simple grants
CSV" shape a donor's staff would export from their grants system: one ``commitment`` row
per grant (amount awarded) and one ``disbursement`` row where an amount was disbursed.
Amounts are read with ``Decimal`` so nothing passes through float.

    python samples/derive_from_360giving.py ../../../shared/data/360giving/grantnav-sample_data-2016
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

HEADER = ["grant_id", "donor", "donor_ref", "recipient", "recipient_ref", "kind", "amount",
          "currency", "date", "purpose"]


def iso(text: str) -> str:
    """360Giving 2016 files carry dates as DD/MM/YYYY or ISO; the CSV wants ISO."""
    text = text.strip()
    for fmt in ("%d/%m/%Y", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    return text[:10]


def amount(value: Decimal) -> str:
    return f"{value:.2f}"


def rows(grants: list[dict]) -> list[list[str]]:
    out = []
    for g in grants:
        funder = g["fundingOrganization"][0]
        recipient = g["recipientOrganization"][0]
        purpose = " ".join((g.get("description") or g.get("title") or "").split())
        base = [g["id"], funder["name"], funder.get("id", ""), recipient["name"],
                recipient.get("id", "")]
        date = iso(g["awardDate"])
        out.append([*base, "commitment", amount(g["amountAwarded"]), g["currency"], date, purpose])
        disbursed = g.get("amountDisbursed")
        if disbursed:
            out.append([*base, "disbursement", amount(disbursed), g["currency"], date, purpose])
    return out


def main(source: Path, target: Path) -> None:
    for name, out in (("baring.json", "baring-foundation-grants.csv"),
                      ("wolfson.json", "wolfson-foundation-grants.csv")):
        grants = json.loads((source / name).read_text("utf-8"), parse_float=Decimal)["grants"]
        with (target / out).open("w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(HEADER)
            writer.writerows(rows(grants))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).parent)
