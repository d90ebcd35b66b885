"""The README's first command: `fundtrack demo` sets up SQLite, loads real data, serves."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import pytest

from fundtrack.cli.serve import DEMO_DIR
from tests.iati_count import count_iati

ROOT = Path(__file__).resolve().parents[1]
QUERY = ("{ activities { totalCount } flows { totalCount } "
         "flowsAggregate(groupBy: [KIND, CURRENCY]) { groups { kind currency count sum } } }")


def readme_commands() -> list[str]:
    blocks = re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    return [b.strip() for b in blocks]


def test_readme_first_command_is_the_demo_and_second_runs_the_tests():
    first, second = readme_commands()[:2]
    assert first.endswith("fundtrack demo") and "pip install" in first
    assert "pytest" in second
    ci = (ROOT / ".ci/run").read_text()
    # CI runs the README's own commands (read from it), and installs nothing Python-side
    # that the README lacks: the only other pip use is the wheel check.
    assert """awk '/^```sh$/{on=1; next} /^```$/{on=0} on' README.md""" in ci
    assert 'bash -c "${README_CMDS[0]}"' in ci and 'bash -c "${README_CMDS[1]}"' in ci
    pip_lines = [line.strip() for line in ci.splitlines() if re.search(r"\bpip\b", line)]
    assert pip_lines == [
        '.venv/bin/pip wheel -q --no-deps -w "$WHEEL/dist" .',
        '"$WHEEL/venv/bin/pip" install -q "$WHEEL"/dist/fundtrack-*.whl']


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, query: str) -> dict:
    req = urllib.request.Request(url, data=json.dumps({"query": query}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture
def demo_server(tmp_path: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNDTRACK_")}
    exe = Path(sys.executable).parent / "fundtrack"
    proc = subprocess.Popen([str(exe), "demo", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/graphql"
    deadline = time.time() + 120
    try:
        while True:
            try:
                post(url, "{ __typename }")
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    out = proc.stdout.read() if proc.stdout else ""
                    pytest.fail(f"demo server did not start:\n{out}")
                time.sleep(0.5)
        yield url, tmp_path
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_demo_serves_the_bundled_real_files(demo_server):
    url, cwd = demo_server
    assert (cwd / "fundtrack.db").exists()  # SQLite in the working directory
    data = post(url, QUERY)["data"]
    files = sorted(p for p in DEMO_DIR.glob("*.xml"))
    acts = flows = 0
    groups: dict[tuple, list] = defaultdict(lambda: [0, Decimal(0)])
    for f in files:
        a, n, g = count_iati(f)
        acts, flows = acts + a, flows + n
        for key, (count, total) in g.items():
            groups[key][0] += count
            groups[key][1] += total
    assert data["activities"]["totalCount"] == acts == 1160
    assert data["flows"]["totalCount"] == flows
    got = {(g["kind"], g["currency"]): (g["count"], Decimal(g["sum"]))
           for g in data["flowsAggregate"]["groups"]}
    assert got == {k: tuple(v) for k, v in groups.items()}
