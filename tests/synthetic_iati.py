"""Small IATI 2.03 activity files with fresh identifiers, so every import really writes.

Each file holds ``activities`` activities of reporting org ``XX-SYN`` with ``per_activity``
disbursements each; the amounts are exact decimals chosen so that every batch has a different
count and sum (the sum is returned with the file, worked out in Python).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

ORG = "XX-SYN"


def write_batch(path: Path, batch: int, *, activities: int = 20, per_activity: int = 10,
                currency: str = "USD") -> tuple[int, Decimal]:
    """Write batch number ``batch`` to ``path``; return its flow count and amount sum."""
    total = Decimal(0)
    acts = []
    for a in range(activities):
        txs = []
        for t in range(per_activity):
            amount = Decimal(f"{batch * 1000 + a * 10 + t + 1}.{(a * 7 + t * 13) % 100:02d}")
            total += amount
            txs.append(f'<transaction><transaction-type code="3"/>'
                       f'<transaction-date iso-date="2021-{t % 12 + 1:02d}-15"/>'
                       f'<value currency="{currency}" value-date="2021-{t % 12 + 1:02d}-15">'
                       f'{amount}</value></transaction>')
        acts.append(f'<iati-activity><iati-identifier>{ORG}-B{batch}-A{a}</iati-identifier>'
                    f'<reporting-org ref="{ORG}"/>{"".join(txs)}</iati-activity>')
    path.write_text(f'<iati-activities version="2.03">{"".join(acts)}</iati-activities>')
    return activities * per_activity, total
