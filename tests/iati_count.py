"""An independent reading of IATI XML with plain ``xml.etree``, to check the importer."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

KINDS = {
    "1": "INCOMING_FUNDS", "2": "OUTGOING_COMMITMENT", "3": "DISBURSEMENT", "4": "EXPENDITURE",
    "5": "INTEREST_PAYMENT", "6": "LOAN_REPAYMENT", "7": "REIMBURSEMENT",
    "8": "PURCHASE_OF_EQUITY", "9": "SALE_OF_EQUITY", "10": "CREDIT_GUARANTEE",
    "11": "INCOMING_COMMITMENT", "12": "OUTGOING_PLEDGE", "13": "INCOMING_PLEDGE",
    "IF": "INCOMING_FUNDS", "C": "OUTGOING_COMMITMENT", "D": "DISBURSEMENT", "E": "EXPENDITURE",
    "IR": "INTEREST_PAYMENT", "LR": "LOAN_REPAYMENT", "R": "REIMBURSEMENT",
    "QP": "PURCHASE_OF_EQUITY", "QS": "SALE_OF_EQUITY", "CG": "CREDIT_GUARANTEE",
}


def count_iati(path: Path) -> tuple[int, int, dict[tuple[str, str | None], tuple[int, Decimal]]]:
    """(activities, transactions, {(kind, currency): (count, sum)}) straight from the XML."""
    root = ET.parse(path).getroot()
    activities = 0
    groups: dict[tuple[str, str | None], list] = defaultdict(lambda: [0, Decimal(0)])
    n_tx = 0
    for act in root.iter("iati-activity"):
        activities += 1
        default = act.get("default-currency")
        for tx in act.findall("transaction"):
            n_tx += 1
            kind = KINDS[tx.find("transaction-type").get("code").strip().upper()]
            value = tx.find("value")
            currency = value.get("currency") or default
            g = groups[(kind, currency.upper() if currency else None)]
            g[0] += 1
            g[1] += Decimal(value.text.strip())
    return activities, n_tx, {k: (v[0], v[1]) for k, v in groups.items()}


def count_kinds(path: Path) -> Counter:
    root = ET.parse(path).getroot()
    return Counter(KINDS[t.find("transaction-type").get("code").strip().upper()]
                   for t in root.iter("transaction"))
