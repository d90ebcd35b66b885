"""The worked spreadsheet example of docs/mappings.md: its mapping and the sheet it
describes, shared by the spreadsheet importer's and the upload page's tests."""

from __future__ import annotations

from pathlib import Path

import openpyxl

ROOT = Path(__file__).resolve().parents[1]


def docs_mapping() -> str:
    doc = (ROOT / "docs" / "mappings.md").read_text(encoding="utf-8")
    return doc.split("The complete file:", 1)[1].split("```toml", 1)[1].split("```", 1)[0]


def ministry_sheet(path: Path) -> Path:
    """The sheet docs/mappings.md describes (two grants and a Total row)."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Expenditure"
    ws.append(["Grants paid by the Ministry, 2024"])
    ws.append([])
    ws.append(["Grant no.", "Partner", "Country", "Date paid", "Amount (EUR)", "Purpose"])
    ws.append(["G-2024-001", "Women's Peace Network", "CO", "15/02/2024", "120,000.00",
               "Mediation training"])
    ws.append(["G-2024-002", "UN Women", "ML", "03/04/2024", 250000, "Participation in peace talks"])
    ws.append(["Total", None, None, None, "=SUM(E4:E5)", None])
    wb.save(path)
    return path
