"""Print precision and recall per pillar of the shipped rules (and of the keyword rules
they replaced) against the hand-labelled sample ``tests/fixtures/pillar_sample.csv``.

Run: ``python bench/pillar_sample.py [RULES.toml ...]`` (default: the shipped
``rules.toml`` and ``tests/fixtures/pillar_rules_keyword.toml``). The method and the
figures are in docs/accounting.md; ``tests/test_pillar_sample.py`` asserts them.
"""

from __future__ import annotations

import sys
from pathlib import Path

from fundtrack.accounting import evaluate
from fundtrack.accounting.config import DEFAULT_DIR, load_file

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests/fixtures/pillar_sample.csv"
RULE_SETS = {"code-gated": DEFAULT_DIR / "rules.toml",
             "keyword": ROOT / "tests/fixtures/pillar_rules_keyword.toml"}


def main() -> None:
    sets = ({Path(p).stem: Path(p) for p in sys.argv[1:]} if len(sys.argv) > 1
            else RULE_SETS)
    rows = evaluate.read_sample(SAMPLE)
    print(f"{len(rows)} hand-labelled cases ({SAMPLE.relative_to(ROOT)})")
    print(evaluate.table({name: evaluate.measure(rows, load_file(path))
                          for name, path in sets.items()}))


if __name__ == "__main__":
    main()
