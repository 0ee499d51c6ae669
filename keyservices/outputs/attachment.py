"""The digest's attachment: every change and unwritable customer as CSV, streamed and bounded.

The rows are written one by one into a buffer of about the limit (5 MB by default): a night
that fits is attached as CSV; a bigger one is zipped on the fly; a night that would not fit even
zipped, or that has more than 100,000 rows (a list nobody reads in a mail, and seconds of work
every such night), is not attached at all, and the digest names the command that lists it
instead. A mail server that refuses a 40 MB message would otherwise lose the whole digest, not
just its attachment.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..model import DigestData
from .cells import csv_writer

ATTACHMENT_LIMIT = 5_000_000  # bytes of the attached file, CSV or zipped
ATTACHMENT_ROWS = 100_000  # rows beyond which the list is not attached (the command lists it)
CSV_STEM = "keyservices-changes"
HEADER = ["kind", "customer_number", "customer_name", "branch", "sales_rep", "before", "after",
          "added", "removed"]
BOM = "\ufeff"  # makes Excel read the UTF-8 correctly (accents in customer names)
_CHECK_EVERY = 2000  # rows between two looks at the size written so far


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    maintype: str
    subtype: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Listing:
    """What became of the full list: attached (as CSV or zipped), or too large to attach."""

    attachment: Attachment | None
    rows: int  # rows the full list has (0: nothing to list, so nothing is attached)
    name: str = ""  # the attached file's name ("" if none); kept when re-rendered without it

    @property
    def too_large(self) -> bool:
        return not self.name and self.rows > 0


def rows_of(data: DigestData) -> Iterator[list[Any]]:
    """Every change, then every customer that cannot be written, as CSV rows (no header)."""
    for ch in data.changes:
        yield ["change", ch.number, ch.name, ch.branch or "", ch.sales_rep or "",
               ch.before or "", ch.after or "", ";".join(ch.added), ";".join(ch.removed)]
    for kind, refs in (("no_configuration", data.no_configuration),
                       ("no_attribute", data.no_attribute)):
        for r in refs:
            yield [kind, r.number, r.name, r.branch or "", r.sales_rep or "", "", "", "", ""]


def changes_listing(data: DigestData, *, limit: int = ATTACHMENT_LIMIT,
                    max_rows: int = ATTACHMENT_ROWS) -> Listing:
    """The attachment for ``data``, never larger than ``limit`` bytes nor ``max_rows`` rows
    (see the module doc)."""
    total = len(data.changes) + len(data.no_configuration) + len(data.no_attribute)
    if total == 0 or total > max_rows:
        return Listing(attachment=None, rows=total)
    rows = rows_of(data)
    plain = io.BytesIO()
    text = io.TextIOWrapper(plain, encoding="utf-8", newline="", write_through=True)
    writer = csv_writer(text)  # ERP names that look like formulas are neutralised (OWASP)
    text.write(BOM)
    writer.writerow(HEADER)
    written = 0
    for row in rows:
        writer.writerow(row)
        written += 1
        if written % _CHECK_EVERY == 0 and plain.tell() > limit:
            break
    else:
        if plain.tell() <= limit:
            return Listing(Attachment(f"{CSV_STEM}.csv", "text", "csv", plain.getvalue()), total,
                           f"{CSV_STEM}.csv")
    text.detach()
    return _zipped(plain.getbuffer(), rows, written=written, total=total, limit=limit)


def _zipped(head: memoryview, rest: Iterator[list[Any]], *, written: int, total: int,
            limit: int) -> Listing:
    """Zip the rows written so far and stream the rest after them; give up as soon as the zip
    is bound to pass ``limit`` (projected from the rows so far) or does pass it."""
    out = io.BytesIO()
    with (zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf,
          zf.open(f"{CSV_STEM}.csv", "w", force_zip64=True) as entry):
        entry.write(head)
        if written and out.tell() / written * total > limit:
            return Listing(attachment=None, rows=total)
        text = io.TextIOWrapper(entry, encoding="utf-8", newline="", write_through=True)
        writer = csv_writer(text)
        for row in rest:
            writer.writerow(row)
            written += 1
            if written % _CHECK_EVERY == 0 and out.tell() > limit:
                return Listing(attachment=None, rows=total)
        text.detach()
    if out.tell() > limit:
        return Listing(attachment=None, rows=total)
    return Listing(Attachment(f"{CSV_STEM}.zip", "application", "zip", out.getvalue()), total,
                   f"{CSV_STEM}.zip")


__all__ = ["ATTACHMENT_LIMIT", "ATTACHMENT_ROWS", "Attachment", "Listing", "changes_listing", "rows_of"]
