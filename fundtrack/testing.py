"""Contract tests for importer plugins: run them on your own sample files.

Every importer, built-in or third-party, must keep the same promises to the ingest
pipeline. This module checks them on real files, so a plugin author finds out in their
own test suite, not in a donor's upload:

- **metadata**: ``name`` (lower-case, usable with ``--format``), ``version`` (SemVer,
  stored on every batch), ``title``;
- **sniffs its own files** and **does not claim foreign ones** (``sniff`` returns
  ``None`` for files of other formats, and never raises);
- **streams**: ``parse`` reads a non-seekable stream incrementally and yields the first
  record before the stream is exhausted (for files big enough to tell);
- **reports locations**: every issue, every record and every nested flow/budget says
  where in the file it came from; unreadable files raise ``FileRejected``;
- **deterministic**: two parses of the same bytes yield equal records and issues;
- **never touches the database** (nor the network): SQLAlchemy engines, ``sqlite3``,
  ``psycopg`` and sockets are guarded while ``parse`` runs;
- **yields only canonical records** whose fields have the documented types (exact
  ``Decimal`` amounts, ``FlowKind``, ``datetime.date`` dates, ISO currency codes);
- **stand-alone flows can be replaced**: a ``FlowRecord`` yielded on its own has a date,
  an ``external_id`` and a ``reporting_org`` with a ``ref`` (the key a corrected
  re-upload replaces it by).

:func:`migrated_database` gives an end-to-end test a migrated database to import into.

Use :func:`check_importer` from any test, or subclass :class:`ImporterContract` in a
pytest module (see ``docs/plugins.md``).
"""

from __future__ import annotations

import contextvars
import dataclasses
import io
import re
import sys
import types
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO
from unittest import mock

from fundtrack.plugins import SNIFF_BYTES, ImportContext, Importer
from fundtrack.records import (
    ActivityRecord,
    BudgetRecord,
    FileRejected,
    FlowRecord,
    Issue,
    OrganisationRecord,
    Severity,
)

RECORD_TYPES = (ActivityRecord, FlowRecord, OrganisationRecord)
#: Reads are capped at this size, so an importer that reads "everything it is given"
#: still reads in steps we can observe.
READ_CAP = 4096
#: Files at least this big, with at least two records, must stream.
STREAM_MIN_BYTES = 64 * 1024
SEMVER_RE = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                       r"(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class ContractError(AssertionError):
    """An importer broke its contract; the message lists every broken promise."""


class DatabaseTouched(RuntimeError):
    """Raised inside ``parse`` when it tries to reach a database or the network."""


# -- results ---------------------------------------------------------------------------


@dataclass
class SampleReport:
    """What one sample file produced; returned so tests can assert more."""

    path: Path
    records: int = 0
    issues: int = 0
    errors: int = 0
    rejected: str | None = None
    bytes_before_first_record: int | None = None
    size: int = 0


@dataclass
class ContractReport:
    importer: str
    samples: list[SampleReport] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(s.records for s in self.samples)

    def raise_if_failed(self) -> ContractReport:
        if self.failures:
            raise ContractError(f"importer {self.importer!r} broke its contract:\n- "
                                + "\n- ".join(self.failures))
        return self


# -- a stream that shows how it is read -----------------------------------------------


class OneWayReader(io.RawIOBase):
    """A non-seekable byte stream over a file that counts what was read.

    Reads return at most :data:`READ_CAP` bytes (short reads are legal for raw streams),
    so reading the whole file takes many calls and we can see when a record appears.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.pos = 0
        self.eof_seen = False

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, b: Any) -> int:
        n = min(len(b), READ_CAP, len(self._data) - self.pos)
        if n <= 0:
            self.eof_seen = True
            return 0
        b[:n] = self._data[self.pos:self.pos + n]
        self.pos += n
        return n


def one_way_stream(data: bytes) -> tuple[BinaryIO, OneWayReader]:
    """A buffered, non-seekable stream (what the pipeline gives) and its counting reader."""
    raw = OneWayReader(data)
    return io.BufferedReader(raw, 8192), raw  # type: ignore[return-value]


# -- the database and network guard ---------------------------------------------------

_guard_active: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "fundtrack_testing_guard", default=None)
_audit_installed = False
GUARDED_AUDIT_EVENTS = ("sqlite3.connect", "socket.connect", "socket.getaddrinfo")


def _audit(event: str, args: tuple[Any, ...]) -> None:
    touched = _guard_active.get()
    if touched is not None and event in GUARDED_AUDIT_EVENTS:
        touched.append(f"{event}{args[:1]!r}")
        raise DatabaseTouched(f"importers must not use {event}")


def _refuse(what: str) -> Callable[..., Any]:
    def refuse(*_a: Any, **_k: Any) -> Any:
        touched = _guard_active.get()
        if touched is not None:
            touched.append(what)
        raise DatabaseTouched(f"importers must not call {what}")

    return refuse


@contextmanager
def no_database() -> Iterator[list[str]]:
    """While active, any attempt to reach a database or the network raises and is noted.

    Guards SQLAlchemy (``Engine.connect``/``begin``/``raw_connection``, ``create_engine``),
    ``sqlite3.connect`` and sockets (audit hooks, process-wide but only active inside
    this block), and ``psycopg.connect``. Yields the list of what was attempted, which
    also catches attempts an importer swallowed with ``except Exception``.
    """
    global _audit_installed
    if not _audit_installed:
        sys.addaudithook(_audit)  # audit hooks cannot be removed; this one is inert outside
        _audit_installed = True
    touched: list[str] = []
    token = _guard_active.set(touched)
    with ExitStack() as stack:
        import sqlalchemy
        from sqlalchemy.engine import Engine

        for attr in ("connect", "begin", "raw_connection"):
            stack.enter_context(mock.patch.object(Engine, attr, _refuse(f"Engine.{attr}")))
        stack.enter_context(mock.patch.object(sqlalchemy, "create_engine",
                                              _refuse("sqlalchemy.create_engine")))
        psycopg = sys.modules.get("psycopg")
        if psycopg is not None:
            stack.enter_context(mock.patch.object(psycopg, "connect", _refuse("psycopg.connect")))
        try:
            yield touched
        finally:
            _guard_active.reset(token)


# -- the record contract ---------------------------------------------------------------

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = typing.get_type_hints(cls)
    return _HINTS[cls]


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if origin is dict:
        k, v = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _type_ok(a, k) and _type_ok(b, v) for a, b in value.items())
    if origin is tuple:
        args = typing.get_args(hint)
        return (isinstance(value, tuple) and len(value) == len(args)
                and all(_type_ok(v, a) for v, a in zip(value, args, strict=True)))
    if hint is date:
        return isinstance(value, date) and not isinstance(value, datetime)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is Decimal:
        return isinstance(value, Decimal) and value.is_finite()
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def record_problems(obj: Any, where: str = "") -> list[str]:
    """Why ``obj`` (a canonical record, recursively) breaks the documented types.

    Empty list when it is fine. Checks every field against ``fundtrack.records`` type
    hints (so ``amount`` must be a finite ``Decimal``, never ``float``), currency codes
    (three upper-case letters) and that records, flows and budgets carry a location.
    """
    problems: list[str] = []
    cls = type(obj)
    label = f"{cls.__name__} at {getattr(obj, 'location', '') or where or '?'}"
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        hint = _hints(cls)[f.name]
        if not _type_ok(value, hint):
            problems.append(f"{label}: field {f.name} = {value!r} is not {hint}")
            continue
        if f.name == "currency" and value is not None and not CURRENCY_RE.match(value):
            problems.append(f"{label}: currency {value!r} is not an ISO 4217 code")
        if isinstance(value, list):
            for v in value:
                if dataclasses.is_dataclass(v):
                    problems.extend(record_problems(v, where))
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            problems.extend(record_problems(value, where))
    if isinstance(obj, (*RECORD_TYPES, BudgetRecord)) and not obj.location:
        problems.append(f"{label}: empty location (say where in the file it came from)")
    return problems


def standalone_flow_problems(flow: FlowRecord) -> list[str]:
    """Why a flow yielded on its own (not inside an ``ActivityRecord``) cannot be kept.

    Such a flow is replaced on re-upload by (``reporting_org.ref``, ``external_id``): without
    both, a corrected file duplicates every flow instead of replacing it. Without a date it
    cannot be converted to USD (the ECB rate is looked up by value date) nor counted in a
    year.
    """
    label = f"stand-alone FlowRecord at {flow.location or '?'}"
    problems: list[str] = []
    if not (flow.external_id or "").strip():
        problems.append(f"{label}: no external_id (a stable id per flow, so a corrected "
                        "file replaces it instead of adding a duplicate)")
    if flow.reporting_org is None or not (flow.reporting_org.ref or "").strip():
        problems.append(f"{label}: no reporting_org with a ref (who reports it; with "
                        "external_id, the key a re-upload replaces by)")
    if flow.value_date is None and flow.transaction_date is None:
        problems.append(f"{label}: no value_date or transaction_date (needed for the USD "
                        "rate and the year)")
    return problems


def issue_problems(issue: Issue) -> list[str]:
    problems = []
    if not isinstance(issue.severity, Severity):
        problems.append(f"issue {issue.message!r}: severity {issue.severity!r} is not a Severity")
    if not issue.location:
        problems.append(f"issue {issue.message!r} has no location")
    if not issue.message:
        problems.append(f"issue at {issue.location!r} has no message")
    if not issue.code:
        problems.append(f"issue {issue.message!r} has no code")
    return problems


# -- the checks ------------------------------------------------------------------------


def check_metadata(importer: Importer) -> list[str]:
    problems = []
    name = getattr(importer, "name", None)
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"name {name!r} must be lower-case letters, digits and _ (used as --format)")
    version = getattr(importer, "version", None)
    if not isinstance(version, str) or not SEMVER_RE.match(version):
        problems.append(f"version {version!r} is not SemVer (MAJOR.MINOR.PATCH)")
    title = getattr(importer, "title", None)
    if not isinstance(title, str) or not title.strip():
        problems.append("title must be a non-empty string (shown by `fundtrack plugins`)")
    for method in ("sniff", "parse"):
        if not callable(getattr(importer, method, None)):
            problems.append(f"{method} is missing or not callable")
    return problems


def sniff_score(importer: Importer, path: Path) -> float | None:
    """What ``sniff`` says about a file, from its first 64 KiB, as the pipeline asks."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
    return importer.sniff(head, path.name)


def _score_problem(score: Any) -> str | None:
    if score is None:
        return None
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0 <= score <= 1:
        return f"sniff returned {score!r}; it must be None or a float in (0, 1]"
    return None


def check_sniff(importer: Importer, samples: Sequence[Path],
                foreign: Sequence[Path]) -> list[str]:
    problems = []
    for path in samples:
        try:
            score = sniff_score(importer, path)
        except Exception as exc:  # noqa: BLE001 - the contract reports any failure
            problems.append(f"sniff raised {exc!r} on its own sample {path.name}")
            continue
        if bad := _score_problem(score):
            problems.append(f"{path.name}: {bad}")
        elif not score:
            problems.append(f"sniff does not recognise its own sample {path.name}")
    for path in foreign:
        try:
            score = sniff_score(importer, path)
        except Exception as exc:  # noqa: BLE001
            problems.append(f"sniff raised {exc!r} on foreign file {path}")
            continue
        if bad := _score_problem(score):
            problems.append(f"{path.name}: {bad}")
        elif score:
            problems.append(f"sniff claims foreign file {path} (score {score})")
    for head, label in ((b"", "an empty file"), (bytes(range(256)) * 4, "binary noise")):
        try:
            score = importer.sniff(head, "unknown.bin")
        except Exception as exc:  # noqa: BLE001
            problems.append(f"sniff raised {exc!r} on {label}")
            continue
        if score:
            problems.append(f"sniff claims {label} (score {score})")
    return problems


def parse_all(importer: Importer, data: bytes, filename: str,
              options: dict[str, Any] | None = None) -> tuple[list[Any], OneWayReader, list[str],
                                                              int | None]:
    """Parse bytes through a guarded, non-seekable stream.

    Returns (items, reader, database attempts, bytes read when the first record came).
    """
    stream, raw = one_way_stream(data)
    ctx = ImportContext(filename=filename, options=dict(options or {}))
    items: list[Any] = []
    first_at: int | None = None
    with no_database() as touched:
        for item in importer.parse(stream, ctx):
            if first_at is None and isinstance(item, RECORD_TYPES):
                first_at = raw.pos if not raw.eof_seen else -1
            items.append(item)
    return items, raw, touched, first_at


def check_sample(importer: Importer, path: Path, report: ContractReport, *,
                 options: dict[str, Any] | None = None, min_records: int = 1,
                 streaming: bool = True) -> None:
    """All parse-side promises on one sample file.

    ``streaming=False`` exempts formats that cannot be read incrementally (a zip
    container such as XLSX, a single JSON document without a streaming parser); the
    stream is still non-seekable, so such an importer must read it into memory itself.
    """
    sample = SampleReport(path=path)
    report.samples.append(sample)
    fail = report.failures.append
    data = path.read_bytes()
    sample.size = len(data)
    try:
        items, raw, touched, first_at = parse_all(importer, data, path.name, options)
    except FileRejected as exc:
        sample.rejected = exc.message
        fail(f"{path.name}: rejected its own sample: {exc.message} at {exc.location!r}")
        return
    except DatabaseTouched as exc:
        fail(f"{path.name}: {exc}")
        return
    except Exception as exc:  # noqa: BLE001
        fail(f"{path.name}: parse raised {exc!r} (raise FileRejected for unreadable files)")
        return
    if touched:
        fail(f"{path.name}: parse tried to reach a database or network: {', '.join(touched)}")
    records = [i for i in items if isinstance(i, RECORD_TYPES)]
    issues = [i for i in items if isinstance(i, Issue)]
    sample.records, sample.issues = len(records), len(issues)
    sample.errors = sum(1 for i in issues if i.severity is Severity.ERROR)
    sample.bytes_before_first_record = first_at
    strays = [type(i).__name__ for i in items if not isinstance(i, (*RECORD_TYPES, Issue))]
    if strays:
        fail(f"{path.name}: parse yielded non-canonical objects: {sorted(set(strays))}")
    if len(records) < min_records:
        fail(f"{path.name}: only {len(records)} record(s); expected at least {min_records}")
    for problem in [p for r in records for p in record_problems(r)][:20]:
        fail(f"{path.name}: {problem}")
    for problem in [p for r in records if isinstance(r, FlowRecord)
                    for p in standalone_flow_problems(r)][:20]:
        fail(f"{path.name}: {problem}")
    for problem in [p for i in issues for p in issue_problems(i)][:20]:
        fail(f"{path.name}: {problem}")
    if streaming and len(records) >= 2 and len(data) >= STREAM_MIN_BYTES and first_at == -1:
        fail(f"{path.name}: the first record came only after the whole stream was read; "
             "parse must stream (read incrementally, yield as it goes)")
    again, _, _, _ = parse_all(importer, data, path.name, options)
    if again != items:
        diff = next((f"item {n}: {a!r} != {b!r}" for n, (a, b) in
                     enumerate(zip(items, again, strict=False)) if a != b),
                    f"{len(items)} items, then {len(again)}")
        fail(f"{path.name}: not deterministic; second parse differs at {diff[:300]}")


def check_malformed(importer: Importer, path: Path, report: ContractReport, *,
                    options: dict[str, Any] | None = None) -> None:
    """A malformed file raises FileRejected, or yields ERROR issues; both with locations."""
    data = path.read_bytes()
    try:
        items, _, touched, _ = parse_all(importer, data, path.name, options)
    except FileRejected as exc:
        if not exc.location:
            report.failures.append(f"{path.name}: FileRejected({exc.message!r}) has no location")
        return
    except Exception as exc:  # noqa: BLE001
        report.failures.append(f"{path.name}: malformed file raised {exc!r}; raise FileRejected "
                               "with a location instead")
        return
    errors = [i for i in items if isinstance(i, Issue) and i.severity is Severity.ERROR]
    if not errors:
        report.failures.append(f"{path.name}: malformed file gave no error issue and no rejection")
    for problem in [p for i in errors for p in issue_problems(i)][:20]:
        report.failures.append(f"{path.name}: {problem}")
    if touched:
        report.failures.append(f"{path.name}: parse tried to reach a database: {touched}")


def check_truncated(importer: Importer, path: Path, report: ContractReport, *,
                    options: dict[str, Any] | None = None) -> None:
    """A sample cut in half (an interrupted upload) fails cleanly: never a stray exception."""
    data = path.read_bytes()
    cut = data[: max(1, len(data) // 2)]
    try:
        items, _, _, _ = parse_all(importer, cut, path.name, options)
    except FileRejected:
        return
    except Exception as exc:  # noqa: BLE001
        report.failures.append(f"{path.name} cut in half: parse raised {exc!r}; raise FileRejected "
                               "(with a location) or yield issues")
        return
    for problem in [p for i in items if isinstance(i, Issue) for p in issue_problems(i)][:5]:
        report.failures.append(f"{path.name} cut in half: {problem}")


def check_importer(importer: Importer, samples: Sequence[Path],
                   foreign: Sequence[Path] | None = None, *,
                   malformed: Sequence[Path] = (),
                   options: dict[str, Any] | None = None,
                   min_records: int = 1, truncated: bool = True, streaming: bool = True,
                   raise_on_failure: bool = True) -> ContractReport:
    """Run the whole importer contract on sample files; raise :class:`ContractError`.

    ``samples``: real files of the importer's own format (each must sniff, parse, stream,
    be deterministic ...). ``foreign``: files of other formats it must not claim.
    ``malformed``: files that must be rejected or give error issues, with locations.
    ``options``: passed as ``ImportContext.options``. ``streaming=False``: the format
    cannot be read incrementally (see :func:`check_sample`); say why where you pass it.
    Returns a :class:`ContractReport`
    with per-sample counts, so tests can assert more.
    """
    samples = [Path(p) for p in samples]
    if not samples:
        raise ValueError("check_importer needs at least one sample file of the importer's format")
    report = ContractReport(importer=str(getattr(importer, "name", importer)))
    report.failures.extend(check_metadata(importer))
    report.failures.extend(check_sniff(importer, samples, [Path(p) for p in foreign or ()]))
    for path in samples:
        check_sample(importer, path, report, options=options, min_records=min_records,
                     streaming=streaming)
        if truncated:
            check_truncated(importer, path, report, options=options)
    for path in malformed:
        check_malformed(importer, Path(path), report, options=options)
    if raise_on_failure:
        report.raise_if_failed()
    return report


class ImporterContract:
    """Subclass in a pytest module to get one test per promise.

    .. code-block:: python

        class TestMyImporter(ImporterContract):
            importer = MY_IMPORTER
            samples = [HERE / "samples/grants.csv"]
            foreign = [HERE / "samples/not-mine.xml"]
            malformed = [HERE / "samples/broken.csv"]
    """

    importer: Importer
    samples: Sequence[Path] = ()
    foreign: Sequence[Path] = ()
    malformed: Sequence[Path] = ()
    options: dict[str, Any] | None = None
    streaming: bool = True  # False only for formats that cannot be read incrementally

    def _run(self, fn: Callable[[ContractReport], None]) -> None:
        report = ContractReport(importer=self.importer.name)
        fn(report)
        report.raise_if_failed()

    def test_metadata(self) -> None:
        self._run(lambda r: r.failures.extend(check_metadata(self.importer)))

    def test_sniffs_own_samples_and_not_foreign_files(self) -> None:
        assert self.samples, "set `samples` to files of your format"
        self._run(lambda r: r.failures.extend(
            check_sniff(self.importer, list(self.samples), list(self.foreign))))

    def test_samples_parse_stream_deterministically_without_database(self) -> None:
        def run(r: ContractReport) -> None:
            for path in self.samples:
                check_sample(self.importer, Path(path), r, options=self.options,
                             streaming=self.streaming)

        self._run(run)

    def test_truncated_samples_fail_cleanly(self) -> None:
        def run(r: ContractReport) -> None:
            for path in self.samples:
                check_truncated(self.importer, Path(path), r, options=self.options)

        self._run(run)

    def test_malformed_files_report_locations(self) -> None:
        def run(r: ContractReport) -> None:
            for path in self.malformed:
                check_malformed(self.importer, Path(path), r, options=self.options)

        self._run(run)


# -- a migrated database for end-to-end tests ------------------------------------------


@contextmanager
def migrated_database(url: str | None = None) -> Iterator[Any]:
    """A migrated database for an end-to-end import test; yields an ``Engine``.

    Without ``url``: a new SQLite file in a temp dir, deleted afterwards. With ``url``
    (for example a PostgreSQL test database, ``postgresql://postgres@127.0.0.1/test``):
    that database is migrated to the latest schema (``fundtrack db upgrade``) and kept.
    Why a helper: the ledger, derived tables and triggers come from fundtrack's Alembic
    migrations, not from ``metadata.create_all()``; this is the same upgrade the CLI runs.

    .. code-block:: python

        @pytest.fixture
        def engine():
            with migrated_database() as engine:
                yield engine
    """
    import tempfile

    from fundtrack.db import make_engine
    from fundtrack.db.migrate import upgrade

    with ExitStack() as stack:
        if url is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="fundtrack-test-"))
            url = f"sqlite:///{Path(tmp) / 'test.db'}"
        upgrade(url)
        engine = make_engine(url)
        stack.callback(engine.dispose)
        yield engine


__all__ = [
    "ContractError",
    "ContractReport",
    "DatabaseTouched",
    "ImporterContract",
    "OneWayReader",
    "SampleReport",
    "check_importer",
    "check_malformed",
    "check_metadata",
    "check_sample",
    "check_sniff",
    "check_truncated",
    "migrated_database",
    "no_database",
    "one_way_stream",
    "parse_all",
    "record_problems",
    "sniff_score",
    "standalone_flow_problems",
]
