"""Code lists the customer service owns until the centre's dictionaries come: occupations with
their risk class, relationships with their inverse, ID types, and region names.

The lists are data (``data/*.csv`` beside this module), read once. Region names come from the
administrative-division table that python-stdnum ships for resident ID numbers (GB/T 2260), so an
address and an ID number agree on what ``530102`` is called.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"


@dataclass(frozen=True)
class Occupation:
    code: str
    name: str
    name_en: str
    risk_class: int


@dataclass(frozen=True)
class Relationship:
    code: str
    name: str
    name_en: str
    inverse: str


@dataclass(frozen=True)
class IdType:
    code: str
    name: str
    name_en: str


def _rows(name: str) -> list[dict[str, str]]:
    with open(DATA / name, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


OCCUPATIONS: dict[str, Occupation] = {
    r["code"]: Occupation(r["code"], r["name"], r["name_en"], int(r["risk_class"]))
    for r in _rows("occupations.csv")
}
RELATIONSHIPS: dict[str, Relationship] = {
    r["code"]: Relationship(r["code"], r["name"], r["name_en"], r["inverse"])
    for r in _rows("relationships.csv")
}
ID_TYPES: dict[str, IdType] = {
    r["code"]: IdType(r["code"], r["name"], r["name_en"]) for r in _rows("id_types.csv")
}
RESIDENT = "resident"
GENDERS = {"M": "男 male", "F": "女 female"}
LOCATION_SOURCES = ("gps", "address")

assert all(r.inverse in RELATIONSHIPS for r in RELATIONSHIPS.values()), "inverse unknown"


# --- regions (GB/T 2260 codes) ----------------------------------------------------------------

_PERIOD = re.compile(r"^\[(\d*)-(\d*)\](.*)$")


def _names(text: str) -> list[tuple[int | None, int | None, str]]:
    """``"[1983-1997]路南县,[1998-]石林县"`` → periods with names."""
    out = []
    for part in text.split(","):
        m = _PERIOD.match(part)
        if m:
            start, end, name = m.groups()
            out.append((int(start) if start else None, int(end) if end else None, name))
        else:
            out.append((None, None, part))
    return out


@lru_cache(maxsize=8192)
def _division(code: str) -> dict[str, str]:
    from stdnum import numdb

    return {k: v for _part, props in numdb.get("cn/loc").info(code) for k, v in props.items()}


def area_known(code: str) -> bool:
    """Whether ``code`` is a county-level division that was ever assigned (any period)."""
    if not (len(code) == 6 and code.isdigit()):
        return False
    return "county" in _division(code)


@lru_cache(maxsize=8192)
def area_valid_in(code: str, year: int) -> bool:
    """Whether ``code`` was in use in ``year`` (python-stdnum's strict reading)."""
    county = _division(code).get("county")
    if not county:
        return False
    return any((s is None or year >= s) and (e is None or year <= e) for s, e, _ in _names(county))


def _current(text: str | None) -> str | None:
    if not text:
        return None
    periods = _names(text)
    open_ended = [n for s, e, n in periods if e is None]
    return (open_ended or [periods[-1][2]])[-1]


@lru_cache(maxsize=8192)
def region_names(code: str) -> tuple[str | None, str | None, str | None]:
    """(province, prefecture, county) names of a 2-, 4- or 6-digit region code, newest names."""
    code = (code + "0000")[:6]
    province = _division(code[:2] + "0000").get("province") or _division(code).get("province")
    prefecture = _current(_division(code[:4] + "00").get("county")) if code[2:4] != "00" else None
    county = _current(_division(code).get("county")) if code[4:] != "00" else None
    return province, prefecture, county


def as_lists() -> dict[str, list[dict]]:
    """Every code list, for a phone to pick from (P4)."""
    return {
        "occupations": [vars(o) for o in OCCUPATIONS.values()],
        "relationships": [vars(r) for r in RELATIONSHIPS.values()],
        "id_types": [vars(t) for t in ID_TYPES.values()],
        "genders": [{"code": k, "name": v} for k, v in GENDERS.items()],
        "location_sources": [{"code": s} for s in LOCATION_SOURCES],
    }
