"""Hostile XML: entity expansion, external entities and DTDs are refused; nothing stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from fundtrack import models as m
from fundtrack.importing import import_file

SECRET = "TOP-SECRET-CONTENT-4711"

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<iati-activities version="2.03"><iati-activity>
 <iati-identifier>XX-1-LOL</iati-identifier>
 <reporting-org ref="XX-1"/><title><narrative>&lol9;</narrative></title>
</iati-activity></iati-activities>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE foo [ <!ENTITY xxe SYSTEM "file://{path}"> ]>
<iati-activities version="2.03"><iati-activity>
 <iati-identifier>XX-1-XXE</iati-identifier>
 <reporting-org ref="XX-1"/><title><narrative>&xxe;</narrative></title>
</iati-activity></iati-activities>
"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE iati-activities SYSTEM "file://{path}">
<iati-activities version="2.03"><iati-activity>
 <iati-identifier>XX-1-DTD</iati-identifier>
 <reporting-org ref="XX-1"/><title><narrative>&secret;</narrative></title>
</iati-activity></iati-activities>
"""


def stored_text(engine) -> str:
    with engine.connect() as c:
        titles = c.execute(select(m.Activity.title)).scalars().all()
        issues = c.execute(select(m.BatchIssue.message)).scalars().all()
    return " ".join(t or "" for t in [*titles, *issues])


def assert_refused(engine, result) -> None:
    assert result.status == "rejected", result.summary()
    assert "DOCTYPE" in result.message
    with engine.connect() as c:
        assert c.execute(select(func.count()).select_from(m.Activity)).scalar_one() == 0


def test_billion_laughs_is_refused(engine, tmp_path: Path):
    f = tmp_path / "lol.xml"
    f.write_text(BILLION_LAUGHS)
    assert_refused(engine, import_file(engine, f))
    assert "lollol" not in stored_text(engine)


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    p = tmp_path / "secret.txt"
    p.write_text(SECRET)
    return p


def test_external_entity_to_local_file_is_refused(engine, tmp_path: Path, secret_file: Path):
    f = tmp_path / "xxe.xml"
    f.write_text(EXTERNAL_ENTITY.format(path=secret_file))
    result = import_file(engine, f)
    assert_refused(engine, result)
    assert SECRET not in stored_text(engine)
    assert SECRET not in result.message


def test_external_dtd_is_refused(engine, tmp_path: Path):
    dtd = tmp_path / "evil.dtd"
    dtd.write_text(f'<!ENTITY secret "{SECRET}">')
    f = tmp_path / "dtd.xml"
    f.write_text(EXTERNAL_DTD.format(path=dtd))
    result = import_file(engine, f)
    assert_refused(engine, result)
    assert SECRET not in stored_text(engine)


def test_not_xml_at_all_is_refused_clearly(engine, tmp_path: Path):
    f = tmp_path / "junk.bin"
    f.write_bytes(b"\x00\x01\x02 not a report \xff")
    result = import_file(engine, f)
    assert result.status == "rejected"
    assert "format not recognised" in result.message and "iati" in result.message
