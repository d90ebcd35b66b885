"""Hostile XML: entity expansion, external entities and DTDs are refused; nothing stored."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fundtrack.ingest.filesafety import xml_without_doctype
from fundtrack.ingest.pipeline import import_file
from fundtrack.ledger import tables as m
from fundtrack.records import FileRejected

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


# -- the DOCTYPE is refused before libxml2 reads it, in every encoding -------------------

PLAIN = ('<iati-activities version="2.03"><iati-activity><iati-identifier>XX-1-E</iati-identifier>'
         '<reporting-org ref="XX-1"/></iati-activity></iati-activities>')
DTD = '<!DOCTYPE x [<!ENTITY a "aaaa">]>\n'


class _Tripwire(io.RawIOBase):
    """A stream that fails the test if anyone reads past ``limit`` bytes."""

    def __init__(self, data: bytes, limit: int) -> None:
        self.data, self.limit, self.pos = data, limit, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
        assert self.pos <= self.limit, "the scanner read past the DOCTYPE"
        chunk = self.data[self.pos:self.pos + len(b)]
        b[:len(chunk)] = chunk
        self.pos += len(chunk)
        return len(chunk)


def test_doctype_is_refused_before_the_parser_reads_the_dtd():
    """The rest of the file (a billion-laughs subset) is never read, by us or by libxml2."""
    head = b'<?xml version="1.0"?>\n<!-- a comment -->\n<!DOCTYPE lolz ['
    rest = BILLION_LAUGHS.split("<!DOCTYPE lolz [", 1)[1].encode() * 2000  # ~1.4 MB
    with pytest.raises(FileRejected) as exc:
        xml_without_doctype(io.BufferedReader(_Tripwire(head + rest, 64 * 1024 + 4), 16))
    assert "DOCTYPE declarations are not allowed" in exc.value.message
    assert exc.value.location == "line 3"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be",
                                      "utf-32", "utf-32-le", "utf-32-be"])
def test_doctype_is_refused_in_every_encoding_and_nothing_stored(engine, tmp_path: Path,
                                                                  encoding: str):
    declared = encoding.replace("-sig", "").split("-")[0] + "-" + encoding.split("-")[1]
    f = tmp_path / "enc.xml"
    f.write_bytes(f'<?xml version="1.0" encoding="{declared}"?>\n{DTD}{PLAIN}'.encode(encoding))
    result = import_file(engine, f, fmt="iati")  # the sniffer reads only UTF-8 heads
    assert_refused(engine, result)
    # the same file without the DOCTYPE is read (so the refusal above is the DOCTYPE's)
    ok = tmp_path / "ok.xml"
    ok.write_bytes(f'<?xml version="1.0" encoding="{declared}"?>\n{PLAIN}'.encode(encoding))
    if encoding in ("utf-32", "utf-32-le", "utf-32-be"):
        return  # libxml2 reads UTF-32 only with iconv; refusing it is enough here
    assert import_file(engine, ok, fmt="iati").status == "applied", encoding


def test_comments_and_processing_instructions_before_the_root_are_allowed(engine, tmp_path: Path):
    f = tmp_path / "c.xml"
    f.write_text(f'<?xml version="1.0"?>\n<!-- <!DOCTYPE in a comment -->\n<?pi x?>\n{PLAIN}')
    assert import_file(engine, f).status == "applied"


def test_a_prolog_of_endless_comments_is_refused(engine, tmp_path: Path):
    f = tmp_path / "long.xml"
    f.write_text('<?xml version="1.0"?>\n' + "<!-- x -->" * 200_000 + PLAIN)
    result = import_file(engine, f, fmt="iati")
    assert result.status == "rejected" and "prolog" in result.message
