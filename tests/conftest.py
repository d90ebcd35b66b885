"""Test databases: real SQLite files or a real PostgreSQL, chosen by the environment.

``FUNDTRACK_TEST_DATABASE_URL`` unset or ``sqlite`` -> SQLite files in a temp dir.
``FUNDTRACK_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test`` -> PostgreSQL:
the schema is migrated once into a template database of this run, and every test that
asks for ``engine`` gets its own database cloned from it (``CREATE DATABASE ... TEMPLATE``),
dropped afterwards. Runs in parallel never share a database.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from fundtrack.db import make_engine, normalise_url
from fundtrack.db.migrate import upgrade

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FIXTURES = Path(__file__).parent / "fixtures"
EXAMPLE_PLUGIN = Path(__file__).resolve().parents[1] / "examples" / "fundtrack-example-plugin"


def locate_example_plugin(tmp: Path) -> bool:
    """Make the example plugin findable as a third party without installing it.

    The README's test command must pass with nothing else typed, and the example plugin is
    its own distribution (tests check that fundtrack finds it through its entry point, as
    it would find any plugin). When it is not installed, we do what an editable install
    does, but in a temp dir instead of the venv: a ``.dist-info`` (name, version and entry
    points read from the example's own ``pyproject.toml``) and the source folder, both put
    on ``sys.path`` and on ``PYTHONPATH`` for subprocesses. Nothing is downloaded and the
    venv is not changed; an installed copy (``pip install -e examples/...``) wins.
    Returns True when it located the plugin here.
    """
    from importlib.metadata import entry_points

    meta = tomllib.loads((EXAMPLE_PLUGIN / "pyproject.toml").read_text("utf-8"))["project"]
    groups: dict[str, dict[str, str]] = meta.get("entry-points", {})
    if any(ep.name in groups.get(ep.group, {}) for group in groups
           for ep in entry_points(group=group)):
        return False
    dist = tmp / f"{meta['name'].replace('-', '_')}-{meta['version']}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {meta['name']}\nVersion: {meta['version']}\n", "utf-8")
    (dist / "entry_points.txt").write_text("".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
        for group, eps in groups.items()), "utf-8")
    paths = [str(tmp), str(EXAMPLE_PLUGIN)]
    sys.path[:0] = paths
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [*paths, *filter(None, [os.environ.get("PYTHONPATH")])])
    return True


def pytest_configure(config: pytest.Config) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="fundtrack-example-plugin-"))
    config._fundtrack_example_tmp = tmp  # type: ignore[attr-defined]
    if not locate_example_plugin(tmp):
        shutil.rmtree(tmp, ignore_errors=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    tmp = getattr(config, "_fundtrack_example_tmp", None)
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)


def shared_file(rel: str) -> Path:
    """A file from ../shared/data; skip loudly if shared/ is missing."""
    path = SHARED / rel
    if not path.exists():
        pytest.fail(f"shared data file missing: {path} (clone with ../shared beside the repo)")
    return path


class DatabaseFactory:
    """Makes fresh, fully migrated databases of the kind under test."""

    def __init__(self, base_url: str, workdir: Path) -> None:
        self.base_url = normalise_url(base_url)
        self.pg = self.base_url.startswith("postgresql")
        self.workdir = workdir
        self.made: list[str] = []
        self.tag = f"ft_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        if self.pg:
            self.admin = create_engine(self.base_url, isolation_level="AUTOCOMMIT")
            self.template = f"{self.tag}_tmpl"
            with self.admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{self.template}"'))
            upgrade(self._url(self.template))
        else:
            self.template_file = workdir / "template.db"
            upgrade(f"sqlite:///{self.template_file}")

    def _url(self, name: str) -> str:
        return self.base_url.rsplit("/", 1)[0] + "/" + name

    @property
    def kind(self) -> str:
        return "postgresql" if self.pg else "sqlite"

    def new_url(self) -> str:
        name = f"{self.tag}_{len(self.made)}"
        self.made.append(name)
        if self.pg:
            with self.admin.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"'))
            return self._url(name)
        path = self.workdir / f"{name}.db"
        shutil.copyfile(self.template_file, path)
        return f"sqlite:///{path}"

    def drop(self, url: str) -> None:
        if self.pg:
            name = url.rsplit("/", 1)[1]
            with self.admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        else:
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)

    def close(self) -> None:
        if self.pg:
            for name in [*self.made, self.template]:
                with self.admin.connect() as c:
                    c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            self.admin.dispose()


@pytest.fixture(scope="session")
def db_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    url = os.environ.get("FUNDTRACK_TEST_DATABASE_URL", "sqlite")
    if url == "sqlite":
        url = "sqlite://"
    factory = DatabaseFactory(url, tmp_path_factory.mktemp("db"))
    yield factory
    factory.close()


@pytest.fixture
def db_url(db_factory: DatabaseFactory) -> Iterator[str]:
    """URL of a fresh, migrated, empty database for one test."""
    url = db_factory.new_url()
    yield url
    db_factory.drop(url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """Engine on a fresh, migrated, empty database for one test."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def db_kind(db_factory: DatabaseFactory) -> str:
    return db_factory.kind


@pytest.fixture(scope="session")
def loaded_url(db_factory: DatabaseFactory) -> Iterator[str]:
    """A database holding every shared IATI activity file, shared by read-only tests."""
    from fundtrack.ingest.pipeline import import_file

    url = db_factory.new_url()
    eng = make_engine(url)
    for path in sorted((SHARED / "iati-activity").rglob("*.xml")):
        if "assembled" in path.parts:  # the same activities as dportal_36-39
            continue
        result = import_file(eng, path)
        assert result.status == "applied", result.summary()
    eng.dispose()
    yield url
    db_factory.drop(url)


@pytest.fixture(scope="session")
def loaded_engine(loaded_url: str) -> Iterator[Engine]:
    eng = make_engine(loaded_url)
    yield eng
    eng.dispose()
