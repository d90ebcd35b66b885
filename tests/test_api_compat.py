"""The compatibility module (fundtrack/api/execution/compat.py) holds the pins it was
written against: it refuses other minors of graphql-core and strawberry with a message
saying what to do, and pyproject.toml pins exactly those minors."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import version
from pathlib import Path

from fundtrack.api.execution.compat import PINNED, version_problems

ROOT = Path(__file__).resolve().parents[1]


def test_installed_versions_are_the_pinned_ones() -> None:
    assert version_problems({d: version(d) for d in PINNED}) == []


def test_another_minor_is_refused_clearly() -> None:
    problems = version_problems({"graphql-core": "3.4.0", "strawberry-graphql": "0.341.9"})
    assert len(problems) == 1
    assert problems[0].startswith("graphql-core 3.4.0 is installed")
    assert "3.3.x" in problems[0] and "compat.py" in problems[0]
    assert version_problems({"graphql-core": "3.3.5", "strawberry-graphql": "0.342.0"}) \
        [0].startswith("strawberry-graphql 0.342.0 is installed")
    assert len(version_problems({})) == 2  # neither installed


def test_pyproject_pins_the_same_minors() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["dependencies"]
    for dist, (major, minor) in PINNED.items():
        spec = next(d for d in deps if re.match(rf"{re.escape(dist)}\s*[<>=~!]", d))
        lower = re.search(r">=\s*(\d+)\.(\d+)", spec)
        upper = re.search(r"<\s*(\d+)\.(\d+)(?:\D|$)", spec)
        assert lower and upper, spec
        assert (int(lower[1]), int(lower[2])) == (major, minor), spec
        assert (int(upper[1]), int(upper[2])) == (major, minor + 1), spec
