"""CSV and XLSX tables for import and export (F5.6): bytes in, rows out, and back.

The first row names the columns (case and surrounding spaces do not matter). CSV is read as
UTF-8 (with or without BOM) or, failing that, GB 18030 — what Excel writes on a Chinese Windows;
it is written as UTF-8 with a BOM, which Excel opens correctly.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

from customer.exceptions import Invalid

MAX_ROWS = 20000


def read_table(fmt: str, content: bytes) -> list[dict[str, Any]]:
    """Rows of a CSV or XLSX file as dicts keyed by the header; blank rows are skipped."""
    rows = _csv_rows(content) if fmt == "csv" else _xlsx_rows(content)
    try:
        header = next(rows)
    except StopIteration:
        raise Invalid("the file is empty", {"content_base64": ["has no header row"]}) from None
    names = [str(h or "").strip().lower() for h in header]
    if "name" not in names or "id_number" not in names:
        raise Invalid("the header lacks name or id_number",
                      {"content_base64": [("the first row must name the columns, "
                                           "with at least name and id_number")]})
    out = []
    for cells in rows:
        if not any(c not in (None, "") for c in cells):
            continue
        if len(out) >= MAX_ROWS:
            raise Invalid("too many rows", {"content_base64": [f"at most {MAX_ROWS} rows"]})
        out.append({n: c for n, c in zip(names, cells, strict=False) if n})
    return out


def _csv_rows(content: bytes):
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = content.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise Invalid("unreadable CSV", {"content_base64": ["is neither UTF-8 nor GB 18030"]})
    return iter(list(csv.reader(io.StringIO(text))))


def _xlsx_rows(content: bytes):
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - whatever openpyxl finds wrong, the file is unreadable
        raise Invalid("unreadable XLSX", {"content_base64": ["is not an XLSX workbook"]}) \
            from None
    sheet = book.worksheets[0]
    return iter([list(r) for r in sheet.iter_rows(values_only=True)])


def write_table(fmt: str, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> bytes:
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(columns)
        for r in rows:
            w.writerow(["" if r.get(c) is None else r.get(c) for c in columns])
        return buf.getvalue().encode("utf-8-sig")
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet("customers")
    sheet.append(list(columns))
    for r in rows:
        sheet.append([r.get(c) for c in columns])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
