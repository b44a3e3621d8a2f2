"""The customer domain: people, their identity documents, relations and who may see them.

Pure: no nameko, no SQLAlchemy. Rules live here — GB 11643 resident ID numbers, mobile numbers,
pinyin search keys, optimistic versions, the caller's scope over customers, age buckets — and the
service's entrypoints call them.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import phonenumbers
from pypinyin import Style, lazy_pinyin
from stdnum.cn import ric
from stdnum.exceptions import ValidationError as StdnumError

from customer import dictionaries as dicts
from customer.exceptions import Invalid, OutOfScope, StaleVersion

# --- identity documents -----------------------------------------------------------------------

EARLIEST_BIRTH = date(1850, 1, 1)  # the standard's own example is born in 1880
_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class ResidentId:
    number: str
    birth_date: date
    gender: str  # "M" or "F": the order code is odd for men, even for women
    area_code: str


def resident_id(number: str, *, today: date | None = None) -> ResidentId:
    """A checked GB 11643-1999 resident ID number: 18 characters, known area code, real birth
    date, right check digit (ISO 7064 MOD 11-2, ``X`` for 10).

    The area code must be one GB/T 2260 ever assigned. python-stdnum's ``validate`` also demands
    that the code was in use in the birth year, which refuses real cards — people born before
    their county got its present code (``530102`` 五华区 dates from 1983, cards from 1984) and
    the standard's own example ``440524188001010014`` — so that part is not applied.
    """
    text = ric.compact(str(number or ""))
    if len(text) != 18:
        raise Invalid("ID number must have 18 characters",
                      {"id_number": ["must have 18 characters"]})
    if not text[:17].isdigit() or not (text[17].isdigit() or text[17] == "X"):
        raise Invalid("ID number has a bad character",
                      {"id_number": ["must be 17 digits and a digit or X"]})
    if text[17] != ric.calc_check_digit(text):
        raise Invalid("ID number check digit is wrong", {"id_number": ["check digit is wrong"]})
    try:
        born = ric.get_birth_date(text)
    except StdnumError:
        raise Invalid("ID number has no real birth date",
                      {"id_number": ["birth date is not a real date"]}) from None
    if born < EARLIEST_BIRTH or born > (today or date.today()):
        raise Invalid("ID number birth date is out of range",
                      {"id_number": ["birth date is out of range"]})
    if not dicts.area_known(text[:6]):
        raise Invalid("ID number area code is unknown", {"id_number": ["area code is unknown"]})
    return ResidentId(text, born, "M" if int(text[16]) % 2 else "F", text[:6])


def make_resident_id(area_code: str, born: date, order: int) -> str:
    """The resident ID number of ``area_code``, ``born`` and order code ``order`` (odd: a man)."""
    body = f"{area_code}{born:%Y%m%d}{order % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


def normalise_id_number(id_type: str, number: str) -> str:
    if id_type not in dicts.ID_TYPES:
        raise Invalid("unknown ID type", {"id_type": [f"unknown ID type {id_type!r}"]})
    if id_type == dicts.RESIDENT:
        return resident_id(number).number
    text = re.sub(r"\s+", "", str(number or "")).upper()
    if not (4 <= len(text) <= 32) or not re.fullmatch(r"[A-Z0-9()\-]+", text):
        raise Invalid("bad ID number", {"id_number": ["4-32 letters, digits, ( ) or -"]})
    return text


def normalise_mobile(text: str | None) -> str | None:
    """A mobile number as stored: 11 digits for China, ``+<country><number>`` elsewhere."""
    if text is None or str(text).strip() == "":
        return None
    try:
        parsed = phonenumbers.parse(str(text), "CN")
    except phonenumbers.NumberParseException:
        raise Invalid("not a phone number", {"mobile": ["is not a phone number"]}) from None
    kind = phonenumbers.number_type(parsed)
    if not phonenumbers.is_valid_number(parsed) or kind not in (
            phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):
        raise Invalid("not a valid mobile number", {"mobile": ["is not a valid mobile number"]})
    if parsed.country_code == 86:
        return str(parsed.national_number)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# --- names and pinyin -------------------------------------------------------------------------

# Surnames read otherwise than the character's everyday reading.
_SURNAMES = {"单": "shan", "曾": "zeng", "解": "xie", "仇": "qiu", "朴": "piao", "区": "ou",
             "查": "zha", "盖": "ge", "乐": "yue", "缪": "miao", "翟": "zhai", "覃": "qin",
             "秘": "bi", "种": "chong", "尉迟": "yu chi", "万俟": "mo qi", "长孙": "zhang sun",
             "隗": "wei", "员": "yun", "宓": "mi", "繁": "po", "黑": "he", "召": "shao"}


def name_syllables(name: str) -> list[str]:
    """The pinyin syllables of a name, surname read as a surname; Latin letters kept as words."""
    name = str(name).strip()
    head: list[str] = []
    for surname in sorted(_SURNAMES, key=len, reverse=True):
        if name.startswith(surname):
            head, name = _SURNAMES[surname].split(), name[len(surname):]
            break
    out = head[:]
    for part in lazy_pinyin(name, style=Style.NORMAL, errors="default", v_to_u=False):
        out.extend(w for w in re.split(r"[^a-z0-9]+", part.lower()) if w)
    return out


def name_keys(name: str) -> tuple[str, str]:
    """(full pinyin, initials): 张三 → ("zhangsan", "zs")."""
    syllables = name_syllables(name)
    return "".join(syllables), "".join(s[0] for s in syllables)


def clean_name(name: Any) -> str:
    text = re.sub(r"\s+", " ", str(name or "")).strip()
    if not text or len(text) > 60:
        raise Invalid("name is required", {"name": ["1-60 characters"]})
    return text


# --- the customer -----------------------------------------------------------------------------

ADDRESS_FIELDS = ("province", "prefecture", "county", "street", "region_code")
LOCATION_FIELDS = ("latitude", "longitude", "location_source", "located_at")
# what a caller may set; the rest is derived or kept by the service
EDITABLE = ("name", "gender", "birth_date", "id_type", "id_number", "mobile", *ADDRESS_FIELDS,
            "occupation_code", "employer", "email", "branch", "manager_id", "latitude",
            "longitude")


@dataclass
class Customer:
    """One person, whether policyholder, insured or beneficiary."""

    name: str
    gender: str
    birth_date: date
    id_type: str
    id_number: str
    branch: str
    mobile: str | None = None
    province: str | None = None
    prefecture: str | None = None
    county: str | None = None
    street: str | None = None
    region_code: str | None = None
    occupation_code: str | None = None
    employer: str | None = None
    email: str | None = None
    manager_id: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    location_source: str | None = None
    located_at: datetime | None = None
    name_pinyin: str = ""
    name_initials: str = ""
    id: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 1

    @property
    def risk_class(self) -> int | None:
        occ = dicts.OCCUPATIONS.get(self.occupation_code or "")
        return occ.risk_class if occ else None

    def age(self, today: date | None = None) -> int:
        return age_on(self.birth_date, today or date.today())

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


COLUMNS = tuple(f.name for f in fields(Customer))


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def age_on(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def _check(c: Customer, today: date) -> Customer:
    """Bring a customer to its canonical form, or say every field that is wrong."""
    errors: dict[str, list[str]] = {}

    def attempt(fn, *args):
        try:
            return fn(*args)
        except Invalid as exc:
            for k, v in exc.fields.items():
                errors.setdefault(k, []).extend(v)
            return None

    name = attempt(clean_name, c.name)
    number = attempt(normalise_id_number, c.id_type, c.id_number)
    mobile = attempt(normalise_mobile, c.mobile)
    if c.id_type == dicts.RESIDENT and number:
        rid = resident_id(number, today=today)
        if c.birth_date and c.birth_date != rid.birth_date:
            errors.setdefault("birth_date", []).append("does not match the ID number")
        if c.gender and c.gender != rid.gender:
            errors.setdefault("gender", []).append("does not match the ID number")
        c = replace(c, birth_date=rid.birth_date, gender=rid.gender)
    # a bad resident ID number is the one error when gender and birth date were to come from it
    from_id = c.id_type == dicts.RESIDENT and number is None
    if c.gender not in dicts.GENDERS and not (from_id and c.gender is None):
        errors.setdefault("gender", []).append("must be M or F")
    if not isinstance(c.birth_date, date):
        if not (from_id and c.birth_date is None):
            errors.setdefault("birth_date", []).append("is required")
    elif not (EARLIEST_BIRTH <= c.birth_date <= today):
        errors.setdefault("birth_date", []).append("is out of range")
    if c.occupation_code and c.occupation_code not in dicts.OCCUPATIONS:
        errors.setdefault("occupation_code", []).append(f"unknown occupation {c.occupation_code}")
    if not c.branch or not re.fullmatch(r"\d{2,16}", c.branch):
        errors.setdefault("branch", []).append("must be a branch code (2-16 digits)")
    if c.email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", c.email):
        errors.setdefault("email", []).append("is not an e-mail address")
    province, prefecture, county = c.province, c.prefecture, c.county
    if c.region_code:
        if not re.fullmatch(r"\d{6}", c.region_code) or not dicts.area_known(c.region_code):
            errors.setdefault("region_code", []).append("is not a known region code")
        else:
            p, pf, co = dicts.region_names(c.region_code)
            province, prefecture, county = province or p, prefecture or pf, county or co
    if (c.latitude is None) != (c.longitude is None):
        errors.setdefault("latitude" if c.latitude is None else "longitude", []).append(
            "latitude and longitude go together")
    elif c.latitude is not None:
        attempt(check_point, c.latitude, c.longitude)
    if errors:
        raise Invalid("the customer data is not valid", errors)
    pinyin, initials = name_keys(name)
    return replace(c, name=name, id_number=number, mobile=mobile, name_pinyin=pinyin,
                   name_initials=initials, province=province, prefecture=prefecture,
                   county=county)


def check_point(latitude: float, longitude: float) -> tuple[float, float]:
    try:
        lat, lon = float(latitude), float(longitude)
    except (TypeError, ValueError):
        raise Invalid("bad point", {"latitude": ["must be a number"]}) from None
    if not (-90 <= lat <= 90) or not (-180 <= lon <= 180):
        raise Invalid("point out of range", {"latitude": ["must be within -90..90"],
                                             "longitude": ["must be within -180..180"]})
    return lat, lon


def new_customer(data: dict[str, Any], *, caller: CallerLike, now: datetime | None = None
                 ) -> Customer:
    """A customer from a create request; branch and manager default to the caller's own."""
    now = now or now_utc()
    values = {k: data.get(k) for k in EDITABLE if data.get(k) not in (None, "")}
    values.setdefault("branch", caller.branch)
    values.setdefault("manager_id", caller.user_id)
    values.setdefault("id_type", dicts.RESIDENT)
    c = Customer(name=values.pop("name", ""), gender=values.pop("gender", None),
                 birth_date=values.pop("birth_date", None), id_type=values.pop("id_type"),
                 id_number=values.pop("id_number", ""), branch=values.pop("branch", None),
                 **values)
    if c.latitude is not None:
        c.location_source, c.located_at = "address", now
    c = _check(c, now.date())
    c.created_at = c.updated_at = now
    c.version = 1
    return c


def change(c: Customer, changes: dict[str, Any], *, version: int, now: datetime | None = None
           ) -> tuple[Customer, list[str]]:
    """The customer with ``changes`` applied, and the names of the fields that changed.

    ``version`` is the one the caller read; another means someone changed it since: 409.
    """
    if version != c.version:
        raise StaleVersion(f"customer {c.id} is at version {c.version}, not {version}",
                           {"version": [f"is {c.version} now; read it again"]},
                           current=c.version)
    now = now or now_utc()
    values = {k: (v if v != "" else None) for k, v in changes.items() if k in EDITABLE}
    if values.get("id_number") and "id_type" not in values:
        values["id_type"] = c.id_type
    # a resident's ID number decides birth date and gender: derive them again from a new one
    resident = values.get("id_type", c.id_type) == dicts.RESIDENT
    if resident and {"id_number", "id_type"} & set(values):
        values.setdefault("birth_date", None)
        values.setdefault("gender", None)
    if "region_code" in values:
        for k in ("province", "prefecture", "county"):
            values.setdefault(k, None)
    updated = _check(replace(c, **values), now.date())
    if {"latitude", "longitude"} & values.keys():
        updated.location_source = "address" if updated.latitude is not None else None
        updated.located_at = now if updated.latitude is not None else None
    changed = [f for f in COLUMNS if getattr(updated, f) != getattr(c, f)
               and f not in ("name_pinyin", "name_initials", "located_at")]
    if changed:
        updated.version = c.version + 1
        updated.updated_at = now
    return updated, changed


def locate(c: Customer, latitude: float, longitude: float, *, source: str = "gps",
           version: int | None = None, now: datetime | None = None) -> Customer:
    """A location fix from the phone's GPS (F5.8) or geocoded from the address."""
    if version is not None and version != c.version:
        raise StaleVersion(f"customer {c.id} is at version {c.version}, not {version}",
                           {"version": [f"is {c.version} now; read it again"]},
                           current=c.version)
    if source not in dicts.LOCATION_SOURCES:
        raise Invalid("unknown location source", {"source": ["must be gps or address"]})
    lat, lon = check_point(latitude, longitude)
    now = now or now_utc()
    return replace(c, latitude=lat, longitude=lon, location_source=source, located_at=now,
                   updated_at=now, version=c.version + 1)


MOVE_FIELDS = frozenset({*ADDRESS_FIELDS, "latitude", "longitude", "branch", "manager_id"})


def moved(changed: Iterable[str]) -> bool:
    """Whether a change moves the customer on the map or between branches (customer_moved)."""
    return bool(MOVE_FIELDS & set(changed))


# --- relations --------------------------------------------------------------------------------

def relation_pair(kind: str, a: int, b: int) -> tuple[tuple[int, int, str], tuple[int, int, str]]:
    """Both directions of a relation: a is b's ``kind``… stored as (a→b kind, b→a inverse).

    ``relate(a, b, "parent")`` reads "b is a's parent", so a→b is parent, b→a is child.
    """
    rel = dicts.RELATIONSHIPS.get(kind)
    if rel is None:
        raise Invalid("unknown relationship", {"kind": [f"unknown relationship {kind!r}"]})
    if a == b:
        raise Invalid("a person is not related to themself",
                      {"related_id": ["must be another customer"]})
    return (a, b, rel.code), (b, a, rel.inverse)


# --- who may see what -------------------------------------------------------------------------

class CallerLike(Protocol):
    user_id: str | None
    branch: str | None
    grants: tuple

    def may(self, permission: str) -> bool: ...
    def may_at(self, permission: str, *, branch: str | None, owner: str | None = None,
               line: str | None = None) -> bool: ...
    def branch_prefixes(self, permission: str) -> tuple[str, ...] | None: ...


@dataclass(frozen=True)
class Scope:
    """The customers a caller reaches with one permission: branch subtrees, and/or their own.

    ``prefixes`` None means every branch; ``owner`` set adds the customers assigned to them.
    """

    prefixes: tuple[str, ...] | None = ()
    owner: str | None = None

    @classmethod
    def of(cls, caller: CallerLike, permission: str) -> Scope:
        prefixes = caller.branch_prefixes(permission)
        own = any(getattr(g, "scope", None) == "self" and g.permission in (permission, "*")
                  for g in caller.grants)
        return cls(prefixes, caller.user_id if own and caller.user_id else None)

    @property
    def everywhere(self) -> bool:
        return self.prefixes is None

    @property
    def nothing(self) -> bool:
        return self.prefixes == () and self.owner is None

    def covers(self, branch: str | None, manager_id: str | None) -> bool:
        if self.prefixes is None:
            return True
        if self.owner is not None and manager_id == self.owner:
            return True
        return branch is not None and any(branch.startswith(p) for p in self.prefixes)


def require_write(caller: CallerLike, c: Customer, permission: str = "customer:write") -> None:
    if not caller.may_at(permission, branch=c.branch, owner=c.manager_id):
        raise OutOfScope(f"you may not change customer {c.id or 'here'}",
                         {"branch": [f"{c.branch} is out of your {permission} scope"]})


def sees_pii(caller: CallerLike, c: Customer) -> bool:
    return caller.may_at("customer:pii", branch=c.branch, owner=c.manager_id)


# --- searching --------------------------------------------------------------------------------

SORTABLE = ("name", "name_pinyin", "name_initials", "birth_date", "created_at", "updated_at",
            "branch", "region_code", "id")
NAME_MODES = ("exact", "prefix", "initials", "pinyin")
_LETTERS = re.compile(r"^[a-zA-Z]+$")
_MOBILE = re.compile(r"^(\+?86)?1\d{10}$")
_IDNO = re.compile(r"^\d{17}[\dXx]$|^\d{15}$")


@dataclass(frozen=True)
class SearchCriteria:
    id_number: str | None = None
    mobile: str | None = None
    name: str | None = None
    name_mode: str = "prefix"
    branch: str | None = None
    manager_id: str | None = None
    born_after: date | None = None   # inclusive
    born_before: date | None = None  # inclusive
    occupation_code: str | None = None
    region: str | None = None
    sort: str = "id"
    descending: bool = False
    limit: int = 20
    after: tuple[Any, int] | None = None  # keyset: (sort value, id) of the last row seen


def criteria(params: dict[str, Any], *, today: date | None = None) -> SearchCriteria:
    """What a search asks for. ``q`` is the phone's one box: an ID number, a mobile, pinyin
    initials (letters) or the start of a name."""
    today = today or date.today()
    p = dict(params)
    q = (p.pop("q", None) or "").strip()
    id_number, mobile, name, mode = p.get("id_number"), p.get("mobile"), p.get("name"), \
        p.get("name_match")
    if q:
        if _IDNO.match(q):
            id_number = q
        elif _MOBILE.match(q.replace(" ", "")):
            mobile = q
        elif _LETTERS.match(q):
            name, mode = q, "initials"
        else:
            name, mode = q, mode or "prefix"
    if id_number:
        id_number = re.sub(r"\s+", "", str(id_number)).upper()
    if mobile:
        try:
            mobile = normalise_mobile(mobile)
        except Invalid:
            mobile = re.sub(r"\D", "", str(mobile))
    mode = mode or "prefix"
    if name is not None:
        name = str(name).strip()
        if mode in ("initials", "pinyin"):
            name = re.sub(r"[^a-z0-9]", "", name.lower())
        if not name:
            raise Invalid("empty name", {"name": ["must not be empty"]})
    born_after = born_before = None
    if p.get("age_max") is not None:  # older than age_max+1 years is excluded
        born_after = _years_before(today, int(p["age_max"]) + 1) + _ONE_DAY
    if p.get("age_min") is not None:
        born_before = _years_before(today, int(p["age_min"]))
    sort = p.get("sort") or {"prefix": "name", "exact": "name", "initials": "name_initials",
                             "pinyin": "name_pinyin"}.get(mode if name else "", "id")
    if sort not in SORTABLE:
        raise Invalid("cannot sort by that", {"sort": [f"one of {', '.join(SORTABLE)}"]})
    after = decode_cursor(p["cursor"], sort) if p.get("cursor") else None
    return SearchCriteria(id_number=id_number or None, mobile=mobile or None, name=name,
                          name_mode=mode, branch=p.get("branch") or None,
                          manager_id=p.get("manager_id") or None, born_after=born_after,
                          born_before=born_before, occupation_code=p.get("occupation_code"),
                          region=p.get("region") or None, sort=sort,
                          descending=p.get("order") == "desc", limit=int(p.get("limit") or 20),
                          after=after)


def _years_before(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February
        return today.replace(year=today.year - years, day=28)


def encode_cursor(c: Customer, sort: str) -> str:
    value = getattr(c, sort)
    if isinstance(value, (date, datetime)):
        value = value.isoformat()
    raw = json.dumps([sort, value, c.id], ensure_ascii=False, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(text: str, sort: str) -> tuple[Any, int]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        key, value, last_id = json.loads(raw)
    except (ValueError, TypeError):
        raise Invalid("bad cursor", {"cursor": ["is not a cursor this service gave"]}) from None
    if key != sort:
        raise Invalid("cursor of another sort", {"cursor": [f"was made for sort {key}"]})
    if sort == "birth_date" and value is not None:
        value = date.fromisoformat(value)
    elif sort in ("created_at", "updated_at") and value is not None:
        value = datetime.fromisoformat(value)
    return value, int(last_id)


# --- analysis (F6) ----------------------------------------------------------------------------

AGE_BANDS = ((0, 17), (18, 29), (30, 39), (40, 49), (50, 59), (60, 200))
GROUPINGS = ("branch", "prefecture", "county", "manager", "none")


def band_label(lo: int, hi: int) -> str:
    return f"{lo}+" if hi >= 200 else f"{lo}-{hi}"


def band_edges(today: date) -> list[tuple[str, date, date]]:
    """(label, born on or after, born on or before) for each age band on ``today``."""
    out = []
    for lo, hi in AGE_BANDS:
        first = _years_before(today, hi + 1) + _ONE_DAY
        last = _years_before(today, lo)
        out.append((band_label(lo, hi), first, last))
    return out


def summarise(rows: Iterable[tuple[str | None, str, str, str | None, int]]) -> list[dict]:
    """Group counts ``(group, gender, age band, occupation, n)`` into one mix per group."""
    groups: dict[str | None, dict] = {}
    for group, gender, band, occupation, n in rows:
        g = groups.setdefault(group, {"group": group, "total": 0, "gender": {}, "age": {},
                                      "occupation": {}, "risk_class": {}})
        g["total"] += n
        g["gender"][gender] = g["gender"].get(gender, 0) + n
        g["age"][band] = g["age"].get(band, 0) + n
        occ = occupation or "unknown"
        g["occupation"][occ] = g["occupation"].get(occ, 0) + n
        risk = dicts.OCCUPATIONS[occupation].risk_class if occupation in dicts.OCCUPATIONS \
            else None
        key = str(risk) if risk else "unknown"
        g["risk_class"][key] = g["risk_class"].get(key, 0) + n
    labels = [band_label(lo, hi) for lo, hi in AGE_BANDS]
    out = []
    for g in sorted(groups.values(), key=lambda g: (-g["total"], str(g["group"]))):
        g["age"] = {lab: g["age"].get(lab, 0) for lab in labels}
        g["occupation"] = dict(sorted(g["occupation"].items(), key=lambda kv: -kv[1]))
        g["risk_class"] = dict(sorted(g["risk_class"].items()))
        out.append(g)
    return out


# --- import (F5.6) ----------------------------------------------------------------------------

IMPORT_COLUMNS = ("name", "gender", "birth_date", "id_type", "id_number", "mobile", "province",
                  "prefecture", "county", "street", "region_code", "occupation_code", "employer",
                  "email", "branch", "manager_id", "latitude", "longitude")


# what a person types in a spreadsheet's gender and ID type columns
_GENDER_WORDS = {"男": "M", "女": "F", "m": "M", "f": "F", "male": "M", "female": "F"}
_ID_TYPE_NAMES = {t.name: t.code for t in dicts.ID_TYPES.values()} | {"身份证": dicts.RESIDENT}


def row_values(row: dict[str, Any]) -> dict[str, Any]:
    """Text cells of one import row as typed values; a bad cell is an Invalid for that field."""
    values: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for k in IMPORT_COLUMNS:
        v = row.get(k)
        if v is None or (isinstance(v, str) and v.strip() == ""):
            continue
        if k == "birth_date":
            if isinstance(v, datetime):
                v = v.date()
            elif not isinstance(v, date):
                try:
                    v = date.fromisoformat(str(v).strip()[:10])
                except ValueError:
                    errors.setdefault(k, []).append("is not a date (YYYY-MM-DD)")
                    continue
        elif k in ("latitude", "longitude"):
            try:
                v = float(v)
            except (TypeError, ValueError):
                errors.setdefault(k, []).append("is not a number")
                continue
        else:
            if isinstance(v, float) and v.is_integer() and abs(v) < 1e15:
                v = int(v)  # a spreadsheet that took digits for a number (18 are lost anyway)
            v = str(v).strip()
            if k == "gender":
                v = _GENDER_WORDS.get(v.lower(), v)
            elif k == "id_type":
                v = _ID_TYPE_NAMES.get(v, v)
        values[k] = v
    if errors:
        raise Invalid("bad cells", errors)
    return values
