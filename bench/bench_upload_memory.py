"""Peak memory of importing the worst-shaped uploads, up to the 200 MiB upload limit.

    .venv/bin/python bench/bench_upload_memory.py [--mb 200] [--shapes iati-empty,fts-empty]

Each shape is generated at ``--mb`` MiB (default: the upload limit,
``FUNDTRACK_MAX_UPLOAD_BYTES`` = 200 MiB) and imported with ``import_file`` into a fresh
SQLite database in a child process, so the peak RSS (``ru_maxrss``) is that import's
alone. The baseline is the same child importing a one-activity file. Shapes:

- ``iati-empty``: ``<iati-activities>`` of ``<iati-activity/>`` (16 bytes each): every one
  an error ("no iati-identifier") and nothing to write;
- ``iati-min``: the smallest activities that are written (identifier only, no
  reporting-org: a warning each);
- ``fts-empty``: an FTS search of ``{}`` flows (3 bytes each): every one an error;
- ``fts-min``: the smallest FTS flows that are written (id, status, amountUSD);
- ``g360-empty``: a 360Giving JSON of ``{}`` grants.

Not a test (minutes at 200 MiB on a shared machine); docs/security.md records a run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024

SHAPES: dict[str, tuple[bytes, bytes, str, bytes]] = {
    # head, tail, repeated unit ({n} is numbered), separator
    "iati-empty": (b'<?xml version="1.0"?>\n<iati-activities version="2.03">', b"</iati-activities>\n",
                   "<iati-activity/>", b""),
    "iati-min": (b'<?xml version="1.0"?>\n<iati-activities version="2.03">', b"</iati-activities>\n",
                 "<iati-activity><iati-identifier>A{n}</iati-identifier></iati-activity>", b""),
    "fts-empty": (b'{"status":"ok","data":{"flows":[', b"]}}", "{}", b","),
    "fts-min": (b'{"status":"ok","data":{"flows":[', b"]}}",
                '{"id":{n},"status":"paid","amountUSD":1}', b","),
    "g360-empty": (b'{"grants":[', b"]}", "{}", b","),
}
FORMATS = {"iati": "iati", "fts": "fts", "g360": "giving360"}

CHILD = r"""
import json, resource, sys, time
from fundtrack.db import make_engine
from fundtrack.ingest.pipeline import import_file
from fundtrack.db.migrate import upgrade
url, path, fmt = sys.argv[1:4]
upgrade(url)
engine = make_engine(url)
t = time.perf_counter()
r = import_file(engine, path, fmt=fmt)
print(json.dumps({"status": r.status, "seconds": round(time.perf_counter() - t, 1),
                  "issues_total": r.issues.total, "issues_kept": len(r.issues),
                  "counts": {k: v for k, v in r.counts.items() if k in
                             ("activities", "flows", "skipped", "warnings")},
                  "message": r.message[:120],
                  "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
"""


def generate(shape: str, size: int, out: Path) -> int:
    """Write ``shape`` until the file is ``size`` bytes; returns the number of units."""
    head, tail, unit, sep = SHAPES[shape]
    n = 0
    with out.open("wb") as fh:
        fh.write(head)
        written = len(head) + len(tail)
        block: list[bytes] = []
        while written < size:
            piece = (sep if n else b"") + unit.replace("{n}", str(n)).encode()
            if written + len(piece) > size:
                break
            block.append(piece)
            written += len(piece)
            n += 1
            if len(block) >= 100_000:
                fh.write(b"".join(block))
                block.clear()
        fh.write(b"".join(block))
        fh.write(tail)
    return n


def run(path: Path, fmt: str, workdir: Path) -> dict[str, object]:
    db = workdir / f"{path.stem}.db"
    db.unlink(missing_ok=True)
    r = subprocess.run([sys.executable, "-c", CHILD, f"sqlite:///{db}", str(path), fmt],
                       capture_output=True, text=True, cwd=ROOT, env=os.environ)
    if r.returncode != 0:
        return {"status": f"child failed ({r.returncode})", "message": r.stderr[-300:]}
    db.unlink(missing_ok=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=float, default=200.0, help="file size in MiB")
    ap.add_argument("--shapes", default=",".join(SHAPES))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        base = work / "base.xml"
        base.write_bytes(b'<iati-activities version="2.03"><iati-activity><iati-identifier>B-1'
                         b'</iati-identifier><reporting-org ref="B"/></iati-activity>'
                         b"</iati-activities>")
        baseline = run(base, "iati", work)
        print(f"baseline (one activity): peak {baseline['peak_mib']} MiB\n")
        print("| shape | size | units | status | seconds | peak RSS | over baseline | issues "
              "(total / kept) |")
        print("|---|---|---|---|---|---|---|---|")
        for shape in args.shapes.split(","):
            path = work / f"{shape}.{'xml' if shape.startswith('iati') else 'json'}"
            n = generate(shape, int(args.mb * MiB), path)
            out = run(path, FORMATS[shape.split("-")[0]], work)
            path.unlink()
            extra = (out.get("peak_mib", 0) - baseline["peak_mib"]) if "peak_mib" in out else "?"
            print(f"| {shape} | {args.mb:g} MiB | {n:,} | {out['status']} | {out.get('seconds')} | "
                  f"{out.get('peak_mib')} MiB | {extra} MiB | {out.get('issues_total')} / "
                  f"{out.get('issues_kept')} |", flush=True)
            if out["status"] not in ("applied", "rejected"):
                print(f"    {out.get('message')}", flush=True)


if __name__ == "__main__":
    main()
