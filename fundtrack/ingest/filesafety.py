"""Open uploaded spreadsheets and text files without trusting them.

Donors upload files we did not make. An XLSX is a zip of XML parts: it can be a zip bomb
(a few KiB that inflate to gigabytes), carry a DOCTYPE with entity declarations (billion
laughs, external entities), or hold formulas whose cached results may be stale or forged.
A CSV arrives in whatever encoding the donor's Excel chose. This module is the one place
for those rules; importers call it and get either cell values or a
:class:`~fundtrack.records.FileRejected` that says what to do.

XLSX, in order, before openpyxl sees a byte:

1. the file size is checked (``max_file_bytes``);
2. the zip directory is read with :mod:`zipfile` (no decompression): member count, the
   declared uncompressed total and every member's compression ratio are checked;
3. every XML part is inflated in chunks, counting the bytes really produced (a directory
   can lie), and refused if it holds a ``<!DOCTYPE`` or ``<!ENTITY`` (OOXML never needs
   one). Then openpyxl opens it ``read_only=True, data_only=False``.

Defence in depth: openpyxl itself parses with lxml ``resolve_entities=False`` for small
parts, and with :mod:`defusedxml` (a dependency) for worksheets and shared strings, which
refuses entity declarations.

Formulas are never evaluated and their cached results are never read: a formula cell is
returned as a :class:`Cell` with ``formula`` set and no value, and importers report it.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, Any, BinaryIO

from fundtrack.records import FileRejected

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Size limits for uploaded spreadsheets; generous for real reports, fatal for bombs.

    Real XLSX parts compress 3-20 times (the 360Giving sample: at most 7.9); a highly
    repetitive sheet may reach 100. A member is refused when its ratio exceeds
    ``max_ratio`` and it inflates to more than ``ratio_floor_bytes`` (tiny parts can have
    any ratio harmlessly).
    """

    max_file_bytes: int = 100 * MiB
    max_uncompressed_bytes: int = 1024 * MiB
    max_members: int = 10_000
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 1 * MiB
    max_columns: int = 1000

    @classmethod
    def from_options(cls, options: dict[str, Any] | None) -> Limits:
        """Limits overridden by import options of the same names (operators may raise them)."""
        opts = options or {}
        kwargs = {k: type(getattr(cls(), k))(opts[k]) for k in cls.__dataclass_fields__ if k in opts}
        return cls(**kwargs)


# -- generic stream helpers ---------------------------------------------------------------


def peek(stream: BinaryIO, n: int = 8) -> bytes:
    """The first ``n`` bytes without consuming them (the pipeline's stream is buffered)."""
    peek_fn = getattr(stream, "peek", None)
    if peek_fn is not None:
        return bytes(peek_fn(n)[:n])
    if stream.seekable():
        pos = stream.tell()
        head = stream.read(n)
        stream.seek(pos)
        return head
    raise FileRejected("cannot read the start of the stream", "file")


def seekable_copy(stream: BinaryIO, max_bytes: int) -> BinaryIO:
    """The stream itself if seekable, else a spooled copy; refuses more than ``max_bytes``."""
    try:
        if stream.seekable():
            start = stream.tell()
            stream.seek(0, io.SEEK_END)
            size = stream.tell() - start
            stream.seek(start)
            if size > max_bytes:
                raise _too_big(size, max_bytes)
            return stream
    except (AttributeError, OSError):
        pass
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=16 * MiB)  # noqa: SIM115
    copied = 0
    while chunk := stream.read(1 << 20):
        copied += len(chunk)
        if copied > max_bytes:
            raise _too_big(copied, max_bytes)
        spool.write(chunk)
    spool.seek(0)
    return spool  # type: ignore[return-value]


def _too_big(size: int, limit: int) -> FileRejected:
    return FileRejected(
        f"file too large: more than {limit:,} bytes (got {size:,}); split it, or raise the "
        "max_file_bytes import option if you trust it", "file")


# -- XML: no DOCTYPE, decided before any parser sees a byte --------------------------------

#: A prolog (declaration, comments, processing instructions) longer than this is refused:
#: real files start their root element within a few hundred bytes.
MAX_PROLOG_BYTES = 1 * MiB
DOCTYPE_REFUSED = ("DOCTYPE declarations are not allowed in IATI files (entity and DTD "
                   "attacks); the file is refused before any XML parser reads it")
_XML_FAMILIES: tuple[tuple[bytes, str, int], ...] = (
    # (first bytes, codec, bytes of byte-order mark to skip); the longer marks first
    (codecs.BOM_UTF32_LE, "utf-32-le", 4), (codecs.BOM_UTF32_BE, "utf-32-be", 4),
    (b"<\0\0\0", "utf-32-le", 0), (b"\0\0\0<", "utf-32-be", 0),
    (codecs.BOM_UTF8, "utf-8", 3),
    (codecs.BOM_UTF16_LE, "utf-16-le", 2), (codecs.BOM_UTF16_BE, "utf-16-be", 2),
    (b"<\0?\0", "utf-16-le", 0), (b"\0<\0?", "utf-16-be", 0),
    (b"<\0", "utf-16-le", 0), (b"\0<", "utf-16-be", 0),
)
_EBCDIC_XML = b"\x4c\x6f\xa7\x94"  # "<?xm" in EBCDIC


class Prefixed(io.RawIOBase):
    """The bytes already read from a stream (to sniff or scan it), then the rest of it:
    no seeking needed, so it works on uploads and pipes too."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head = head
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        if self.head:
            n = min(len(b), len(self.head))
            b[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(b))
        b[:len(data)] = data
        return len(data)


def xml_without_doctype(stream: BinaryIO, what: str = DOCTYPE_REFUSED) -> BinaryIO:
    """The same XML stream, after refusing any ``<!DOCTYPE`` (or other ``<!`` declaration)
    in its prolog; raises :class:`FileRejected` with ``what``.

    The prolog is read and scanned here, in Python, so a hostile DTD (billion laughs,
    quadratic blowup, external entities) never reaches libxml2, whatever its version and
    amplification guards. The encoding family comes from the byte-order mark or the first
    bytes (XML 1.0 appendix F): UTF-8 and other ASCII-compatible encodings, UTF-16 and
    UTF-32 in either byte order; EBCDIC is refused.
    """
    head = b""
    while len(head) < 4:
        chunk = stream.read(4 - len(head))
        if not chunk:
            break
        head += chunk
    if head.startswith(_EBCDIC_XML):
        raise FileRejected("EBCDIC-encoded XML is not supported; save the file as UTF-8", "line 1")
    codec, skip = "latin-1", 0  # ASCII-compatible: every markup byte is itself
    for start, name, bom in _XML_FAMILIES:
        if head.startswith(start):
            codec, skip = name, bom
            break
    decoder = codecs.getincrementaldecoder(codec)("replace")
    raw = head
    text = decoder.decode(head[skip:])
    pos = 0
    while True:
        verdict, pos = _scan_prolog(text, pos)
        if verdict == "root":
            break
        if verdict == "refuse":
            raise FileRejected(what, f"line {text.count(chr(10), 0, pos) + 1}")
        if len(raw) > MAX_PROLOG_BYTES:
            raise FileRejected(f"the XML prolog (before the root element) is longer than "
                               f"{MAX_PROLOG_BYTES:,} bytes; refused", "line 1")
        chunk = stream.read(64 * 1024)
        if not chunk:
            break  # no root element: the parser says so in its own words
        raw += chunk
        text += decoder.decode(chunk)
    return io.BufferedReader(Prefixed(raw, stream), 1 << 16)  # type: ignore[return-value]


def _scan_prolog(text: str, pos: int) -> tuple[str, int]:
    """("root" | "refuse" | "more", where to resume) for the prolog in ``text`` from ``pos``."""
    n = len(text)
    while True:
        while pos < n and text[pos] in " \t\r\n\ufeff":
            pos += 1
        if pos >= n:
            return "more", pos
        if text[pos] != "<":
            return "root", pos  # not markup: not a prolog; the parser will refuse it
        if text.startswith("<?", pos):
            end = text.find("?>", pos + 2)
            if end < 0:
                return "more", pos
            pos = end + 2
        elif text.startswith("<!--", pos):
            end = text.find("-->", pos + 4)
            if end < 0:
                return "more", pos
            pos = end + 3
        elif n - pos < 4 and "<!--".startswith(text[pos:]):
            return "more", pos
        elif text.startswith("<!", pos):
            return "refuse", pos
        else:
            return "root", pos


# -- XLSX: checks before opening ----------------------------------------------------------

DOCTYPE_MARKERS = (b"<!DOCTYPE", b"<!ENTITY")
UTF16_MARKERS = tuple(m.decode().encode("utf-16-le") for m in DOCTYPE_MARKERS)


def check_xlsx(stream: BinaryIO, limits: Limits) -> None:
    """Refuse an XLSX that is too big, a zip bomb, corrupt, or carries a DTD. Reads no XML
    into any parser; leaves the stream at the start."""
    stream.seek(0, io.SEEK_END)
    size = stream.tell()
    stream.seek(0)
    if size > limits.max_file_bytes:
        raise _too_big(size, limits.max_file_bytes)
    try:
        zf = zipfile.ZipFile(stream)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError) as exc:
        raise FileRejected(f"not a readable XLSX (zip) file: {exc}", "file") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise FileRejected(f"XLSX has {len(infos):,} parts (limit {limits.max_members:,}); "
                               "refused as a possible zip bomb", "file")
        total = 0
        for info in infos:
            total += info.file_size
            if total > limits.max_uncompressed_bytes:
                raise FileRejected(
                    f"XLSX inflates to more than {limits.max_uncompressed_bytes:,} bytes; refused "
                    "as a possible zip bomb (raise max_uncompressed_bytes if you trust it)",
                    f"part {info.filename}")
            _check_ratio(info.filename, info.file_size, info.compress_size, limits)
        names = {i.filename for i in infos}
        if "xl/workbook.xml" not in names and "[Content_Types].xml" not in names:
            raise FileRejected("zip file is not an XLSX workbook (no xl/workbook.xml); old .xls "
                               "and .ods files must be saved as .xlsx first", "file")
        produced = 0
        for info in infos:
            if info.is_dir():
                continue
            produced += _scan_part(zf, info, limits, limits.max_uncompressed_bytes - produced)
    stream.seek(0)


def _check_ratio(name: str, inflated: int, compressed: int, limits: Limits) -> None:
    if inflated > limits.ratio_floor_bytes and inflated > limits.max_ratio * max(compressed, 1):
        ratio = inflated / max(compressed, 1)
        raise FileRejected(
            f"XLSX part compresses {ratio:,.0f} to 1 (limit {limits.max_ratio:,.0f}); refused as "
            "a possible zip bomb before opening", f"part {name}")


def _scan_part(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limits: Limits, budget: int) -> int:
    """Inflate one part in chunks, counting real output; refuse DTDs in XML parts."""
    is_xml = info.filename.endswith((".xml", ".rels", ".vml")) or info.filename == "[Content_Types].xml"
    produced = 0
    tail = b""
    try:
        with zf.open(info) as part:
            while chunk := part.read(1 << 20):
                produced += len(chunk)
                if produced > budget or produced > info.file_size:
                    raise FileRejected("XLSX part inflates beyond its declared or allowed size; "
                                       "refused as a possible zip bomb", f"part {info.filename}")
                _check_ratio(info.filename, produced, info.compress_size, limits)
                if is_xml:
                    window = tail + chunk
                    if any(m in window for m in DOCTYPE_MARKERS + UTF16_MARKERS):
                        raise FileRejected(
                            "XLSX part declares a DOCTYPE or entity (XML entity/DTD attack); "
                            "spreadsheets never need one, so the file is refused",
                            f"part {info.filename}")
                    tail = window[-32:]
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise FileRejected(f"corrupt XLSX part: {exc}", f"part {info.filename}") from None
    return produced


# -- XLSX: reading cells ------------------------------------------------------------------


@dataclass(slots=True)
class Cell:
    """One cell as read, never computed: ``formula`` is set (and ``value`` is None) for a
    formula; ``error`` for an Excel error value such as ``#DIV/0!``."""

    value: Any = None
    formula: str | None = None
    error: str | None = None

    @property
    def empty(self) -> bool:
        if self.formula or self.error:
            return False
        return self.value is None or (isinstance(self.value, str) and not self.value.strip())


EMPTY = Cell()


def open_xlsx(stream: BinaryIO, limits: Limits | None = None) -> Any:
    """A read-only openpyxl workbook, after :func:`check_xlsx`. Close it when done."""
    limits = limits or Limits()
    stream = seekable_copy(stream, limits.max_file_bytes)
    check_xlsx(stream, limits)
    import warnings

    import openpyxl

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about unsupported extensions
            return openpyxl.load_workbook(stream, read_only=True, data_only=False,
                                          keep_links=False, keep_vba=False, rich_text=False)
    except FileRejected:
        raise
    except Exception as exc:  # openpyxl raises many types for broken files
        raise FileRejected(f"not a readable XLSX workbook: {type(exc).__name__}: {exc}",
                           "file") from None


def xlsx_rows(ws: Any, limits: Limits | None = None,
              max_col: int | None = None) -> Iterator[tuple[int, list[Cell]]]:
    """(row number, cells) for each row of a read-only sheet, formulas not evaluated.

    Sheet dimensions are ignored (they can claim a million columns); rows are cut at
    ``max_col`` or ``limits.max_columns``.
    """
    limits = limits or Limits()
    width = min(max_col or limits.max_columns, limits.max_columns)
    if hasattr(ws, "reset_dimensions"):
        ws.reset_dimensions()
    try:
        for n, row in enumerate(ws.iter_rows(max_col=width), start=1):
            yield n, [_cell(c) for c in row]
    except FileRejected:
        raise
    except Exception as exc:
        raise FileRejected(f"unreadable worksheet {ws.title!r}: {type(exc).__name__}: {exc}",
                           f'sheet "{ws.title}"') from None


def _cell(c: Any) -> Cell:
    dtype = getattr(c, "data_type", None)
    value = getattr(c, "value", None)
    if value is None:
        return EMPTY
    if dtype == "f":
        text = getattr(value, "text", value)  # ArrayFormula has .text
        return Cell(formula=str(text))
    if dtype == "e":
        return Cell(error=str(value))
    return Cell(value=value)


# -- XLSX: peeking for sniffers -----------------------------------------------------------

_LOCAL = b"PK\x03\x04"


def zip_head_parts(head: bytes, per_part: int = 64 * 1024,
                   max_out: int = 1024 * 1024) -> dict[str, bytes]:
    """Inflate what the first bytes of a zip hold of each member, for sniffing only.

    Sniffers see only the head of a file, and a zip's directory is at its end; but the
    local headers are in order, so the beginning of early parts (often
    ``xl/sharedStrings.xml`` with the header titles) can be read. Output is capped.
    """
    parts: dict[str, bytes] = {}
    pos = head.find(_LOCAL)
    budget = max_out
    while pos >= 0 and pos + 30 <= len(head) and budget > 0:
        (_sig, _ver, flags, method, _t, _d, _crc, csize, _usize, nlen, xlen) = struct.unpack(
            "<IHHHHHIIIHH", head[pos:pos + 30])
        name = head[pos + 30:pos + 30 + nlen].decode("utf-8", "replace")
        start = pos + 30 + nlen + xlen
        data = head[start:start + csize] if csize and not flags & 8 else head[start:]
        out = b""
        cap = min(per_part, budget)
        try:
            if method == 0:
                out = data[:cap]
            elif method == 8:
                d = zlib.decompressobj(-15)
                out = d.decompress(data, cap)
        except zlib.error:
            out = b""
        parts[name] = out
        budget -= len(out)
        nxt = head.find(_LOCAL, start + (csize if csize and not flags & 8 else 1))
        pos = nxt
    return parts


def is_zip(head: bytes) -> bool:
    return head.startswith(_LOCAL)


def xlsx_head_text(head: bytes) -> str | None:
    """Text of the sharedStrings and sheet parts visible in an XLSX head, or None if the
    head is not an XLSX. Entities are not expanded; it is only searched for titles."""
    if not is_zip(head):
        return None
    parts = zip_head_parts(head)
    if not any(n.startswith("xl/") or n == "[Content_Types].xml" for n in parts):
        return None
    texts = [v.decode("utf-8", "replace") for n, v in parts.items()
             if n.startswith(("xl/sharedStrings", "xl/worksheets/"))]
    return "\n".join(texts)


# -- CSV ----------------------------------------------------------------------------------

SAMPLE_BYTES = 1 * MiB
#: Encodings a spreadsheet program really saves CSV in (detection chooses among these
#: only: without the list, random bytes "detect" as EBCDIC).
CSV_ENCODINGS = ("cp1252", "latin_1", "iso8859_15", "cp1250", "iso8859_2", "cp1251", "koi8_r",
                 "cp1253", "cp1254", "cp1255", "cp1256", "cp1257", "cp1258", "mac_roman",
                 "utf_16", "gb18030", "big5", "shift_jis", "euc_jp", "euc_kr", "cp874")
#: A two- or three-byte UTF-8 sequence: in a file that is not valid UTF-8 it means mixed
#: encodings (single-byte text almost never has these pairs).
UTF8_SEQUENCE = re.compile(rb"[\xc3\xc2\xc5][\x80-\xbf]|\xe2[\x80-\x84][\x80-\xbf]")


@dataclass
class TextSource:
    """A decoded text stream and how its encoding was found."""

    text: IO[str]
    encoding: str
    how: str  # "stated" | "bom" | "utf-8" | "detected"
    confidence: float | None = None
    head: str = ""  # the decoded start of the file, for sniffing the delimiter


def open_text(stream: BinaryIO, encoding: str | None = None,
              option_hint: str = "the `encoding` option") -> TextSource:
    """Decode a CSV stream: the stated encoding, else BOM, else strict UTF-8, else
    charset-normalizer; refuse with a message naming ``option_hint`` when none fits.

    A decoding error later in the file (the detected or stated encoding was wrong) raises
    :class:`FileRejected` from the returned stream's consumer via :func:`csv_rows`.
    """
    buffered = io.BufferedReader(stream, SAMPLE_BYTES)  # type: ignore[arg-type]
    sample = bytes(buffered.peek(SAMPLE_BYTES)[:SAMPLE_BYTES])
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise FileRejected(f"unknown text encoding {encoding!r} given in {option_hint}",
                               "file") from None
        return TextSource(_wrap(buffered, encoding), encoding, "stated",
                          head=sample[:65536].decode(encoding, "replace"))
    if b"\x00" in sample and not sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise FileRejected("this is not a text (CSV) file: it contains NUL bytes. If it is "
                           f"UTF-16 without a byte-order mark, state the encoding with {option_hint} "
                           '(e.g. encoding = "utf-16-le")', "file")
    for bom, enc in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                     (codecs.BOM_UTF16_BE, "utf-16")):
        if sample.startswith(bom):
            return TextSource(_wrap(buffered, enc), enc, "bom",
                              head=sample[:65536].decode(enc, "replace"))
    try:
        _strict_decode(sample, "utf-8")
        return TextSource(_wrap(buffered, "utf-8"), "utf-8", "utf-8",
                          head=sample[:65536].decode("utf-8", "replace"))
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    if UTF8_SEQUENCE.search(sample):
        raise FileRejected(
            "this CSV mixes encodings: parts are UTF-8 and parts are not (often rows pasted "
            "from another file); save it in one encoding, or state the encoding with "
            f"{option_hint}", "file")
    best = from_bytes(sample, cp_isolation=list(CSV_ENCODINGS)).best()
    decoded = ""
    if best is not None and best.encoding:
        try:
            decoded = _strict_decode(sample, best.encoding)
        except UnicodeDecodeError:
            best = None
    controls = sum(1 for ch in decoded if ch < " " and ch not in "\t\r\n")
    if best is None or best.encoding is None or controls > len(decoded) / 200:
        raise FileRejected(
            "could not detect the text encoding of this CSV (it is not UTF-8, and no common "
            "encoding reads it as clean text); state it with "
            f"{option_hint}, e.g. encoding = \"cp1252\"", "file")
    enc = best.encoding
    return TextSource(_wrap(buffered, enc), enc, "detected",
                      confidence=round(1.0 - float(best.chaos), 3),
                      head=sample[:65536].decode(enc, "replace"))


def _strict_decode(sample: bytes, enc: str) -> str:
    """Decode a sample that may end inside a multi-byte character."""
    dec = codecs.getincrementaldecoder(enc)("strict")
    return dec.decode(sample, final=len(sample) < SAMPLE_BYTES)


def _wrap(buffered: Any, enc: str) -> IO[str]:
    return io.TextIOWrapper(buffered, encoding=enc, errors="strict", newline="")


def csv_rows(source: TextSource, delimiter: str | None = None,
             option_hint: str = "the `encoding` option") -> Iterator[tuple[int, list[Cell]]]:
    """(row number, cells) for each CSV record; row 1 is the first line (as Excel shows it).

    The delimiter is sniffed among , ; tab | when not given. A decoding error mid-file is a
    :class:`FileRejected` naming the row and ``option_hint``.
    """
    if delimiter is None:
        delimiter = _sniff_delimiter(source.head)
    csv.field_size_limit(10 * MiB)
    reader = csv.reader(source.text, delimiter=delimiter)
    n = 0
    try:
        for n, row in enumerate(reader, start=1):  # noqa: B007 - n used in the except
            yield n, [Cell(value=v) if v.strip() else EMPTY for v in row]
    except UnicodeDecodeError as exc:
        raise FileRejected(
            f"the file is not valid {source.encoding} ({source.how}): {exc.reason} at byte "
            f"{exc.start} of a block; state the right encoding with {option_hint}",
            f"row {n + 1}") from None
    except csv.Error as exc:
        raise FileRejected(f"malformed CSV: {exc}", f"row {n + 1}") from None


def _sniff_delimiter(head: str) -> str:
    first = head.split("\n", 5)[:5]  # a delimiter must be on every one of the first lines
    best, score = ",", 0
    for d in (",", ";", "\t", "|"):
        counts = [line.count(d) for line in first if line.strip()]
        if counts and min(counts) > score:
            best, score = d, min(counts)
    return best


# -- plain values -------------------------------------------------------------------------


def as_date(value: Any) -> date | None:
    """A cell's date if it is one (openpyxl gives datetimes for date-formatted cells)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return None


__all__ = [
    "Cell",
    "Limits",
    "TextSource",
    "as_date",
    "check_xlsx",
    "csv_rows",
    "is_zip",
    "open_text",
    "open_xlsx",
    "seekable_copy",
    "xlsx_head_text",
    "xlsx_rows",
    "xml_without_doctype",
    "zip_head_parts",
]
