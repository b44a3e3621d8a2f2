"""Demo customers: realistic people of Yunnan, deterministic by seed, loaded fast.

    PYTHONPATH=services/customer python -m customer.demo --config services/customer/config.yaml
    PYTHONPATH=services/customer python -m customer.demo --config … --count 1000000 --seed 7

Households (a head, often a spouse, children, sometimes a parent) share an address, a branch and
a customer manager, and are related (spouse, parent, child). ID numbers are valid GB 11643 numbers
with real area codes (of the home county when that code was in use in the birth year, else of
one that was), mobiles are valid Chinese mobile numbers, prefectures and counties are the real
ones (GB/T 2260), occupations come from the service's dictionary, locations lie around the
prefecture seats inside the province.

By default it loads only into an empty database (so ``scripts/run`` may call it on every start);
``--append`` adds to what is there. PostgreSQL is loaded with COPY, SQLite with executemany in
large transactions.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import random
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path

from customer import dictionaries as dicts
from customer.domain import make_resident_id, name_syllables
from customer.models import customers, relations

CHUNK = 20000
TODAY = date(2026, 1, 1)  # fixed, so a seed gives the same people every year

SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于"
            "蒋蔡余杜叶程"
            "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛"
            "郝龚邵万钱严覃武戴莫孔向汤普字刀岩和杞者施")
# roughly Zipf: the first surnames are far more common
SURNAME_WEIGHTS = [1 / (i + 3) for i in range(len(SURNAMES))]
MALE = ("伟强磊军洋勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林阳成东亮文志国建德海福贵"
        "永祥云山")
FEMALE = "芳娜敏静丽艳娟霞秀玲桂英华慧巧美娅婷雪琳晶倩颖洁红梅兰凤琼燕莉萍丹蓉瑶佳欣怡媛月春"
ROADS = ("人民路", "北京路", "青年路", "环城南路", "东风路", "滇池路", "金碧路", "白塔路", "建设路",
         "文化路", "新华路", "解放路", "团结路", "兴云路", "春城路", "龙泉路", "学府路", "振兴大道")
VILLAGE = "大小新老上下东西南北中"
EMPLOYERS = ("云南白药集团", "云南中烟工业公司", "昆明钢铁控股公司", "中国移动云南公司",
             "云南省农村信用社", "昆明医科大学第一附属医院", "云南大学", "富滇银行", "云南建投集团",
             "云南电网公司", "昆明理工大学", "云南省人民医院", "云天化集团", "普洱茶业公司",
             "大理旅游集团", "西双版纳橡胶公司")
MOBILE_PREFIXES = ("134", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158",
                   "159", "182", "183", "187", "188", "130", "131", "132", "155", "156", "185",
                   "186", "133", "153", "180", "181", "189", "177", "199", "198", "166")
MAIL = ("163.com", "qq.com", "126.com", "sina.com", "foxmail.com")


# --- places ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Prefecture:
    code: str
    name: str
    latitude: float
    longitude: float
    radius: float
    weight: float
    counties: tuple[tuple[str, str], ...]  # (code, current name)


def _loc_lines() -> list[str]:
    import stdnum

    return (Path(stdnum.__file__).parent / "cn" / "loc.dat").read_text(encoding="utf-8") \
        .splitlines()


def yunnan_codes() -> list[tuple[str, str]]:
    """Every county-level code of Yunnan ever assigned, with its text (periods and names)."""
    out, on = [], False
    for line in _loc_lines():
        if line.startswith("53 "):
            on = True
            continue
        if on and not line.startswith("  "):
            break
        if on:
            code, rest = line.strip().split(" ", 1)
            m = re.search(r'county="(.*)"', rest)
            if m and code[2:] != "00":
                out.append(("53" + code, m.group(1)))
    return out


def prefectures() -> list[Prefecture]:
    current: dict[str, list[tuple[str, str]]] = {}
    for code, text in yunnan_codes():
        last = text.split(",")[-1]
        if re.match(r"^\[\d*-\d+\]", last) or code.endswith("01"):  # ended, or 市辖区
            continue
        current.setdefault(code[:4], []).append((code, re.sub(r"^\[\d*-\]", "", last)))
    with open(dicts.DATA / "yunnan.csv", encoding="utf-8", newline="") as f:
        return [Prefecture(r["code"], r["name"], float(r["latitude"]), float(r["longitude"]),
                           float(r["radius_deg"]), float(r["population_10k"]),
                           tuple(current[r["code"][:4]]))
                for r in csv.DictReader(f)]


@cache
def _in_use(year: int, prefix: str) -> tuple[str, ...]:
    return tuple(code for code, _ in yunnan_codes()
                 if code.startswith(prefix) and not code.endswith("00") and not code.endswith("01")
                 and dicts.area_valid_in(code, year))


# today's prefecture → the prefecture (地区) its counties belonged to before it was made a city
FORMER = {"5303": "5322", "5304": "5324", "5305": "5330", "5306": "5321", "5307": "5332",
          "5308": "5327", "5309": "5335"}


def id_area(home: str, year: int, rng: random.Random) -> str:
    """The area code on a card of someone living in ``home`` and born in ``year``: the home
    county's when it was in use that year, else one of the prefecture's, else the province's."""
    if dicts.area_valid_in(home, year):
        return home
    for prefix in (home[:4], FORMER.get(home[:4], "53"), "53"):
        choices = _in_use(year, prefix)
        if choices:
            return rng.choice(choices)
    return home


def _offset(code: str, radius: float) -> tuple[float, float]:
    """Where a county lies from its prefecture seat: fixed per code, within ``radius``."""
    h = hashlib.sha256(code.encode()).digest()
    return ((h[0] / 255 - 0.5) * 2 * radius * 0.8, (h[1] / 255 - 0.5) * 2 * radius * 0.8)


# --- people ------------------------------------------------------------------------------------

@dataclass
class Person:
    row: dict
    relations: list[tuple[int, str]]  # (other id, kind): the other is my <kind>


class Generator:
    """Households of Yunnan customers, one after the other, deterministic by seed."""

    OCCUPATIONS_ADULT = (("0006001", 16), ("0006002", 6), ("0006004", 4), ("0006003", 3),
                         ("0006005", 2), ("0006006", 3), ("0006007", 1), ("0001001", 8),
                         ("0001002", 3), ("0001003", 2), ("0001004", 4), ("0012001", 7),
                         ("0012002", 3), ("0012003", 2), ("0012004", 1), ("0012005", 1),
                         ("0002001", 3), ("0003001", 1), ("0003002", 1), ("0004002", 1),
                         ("0004003", 1), ("0009001", 2), ("0009002", 2), ("0009004", 1),
                         ("0009005", 1), ("0010001", 4), ("0010003", 1), ("0010004", 1),
                         ("0011001", 3), ("0011002", 1), ("0008002", 1), ("0008001", 0.5),
                         ("0007002", 0.5), ("0013001", 0.5), ("0005001", 3), ("0005003", 1))

    def __init__(self, seed: int, first_id: int = 1) -> None:
        self.rng = random.Random(seed)
        self.next_id = first_id
        self.places = prefectures()
        self.place_weights = [p.weight for p in self.places]
        self.occ_codes = [c for c, _ in self.OCCUPATIONS_ADULT]
        self.occ_weights = [w for _, w in self.OCCUPATIONS_ADULT]
        self.numbers: set[str] = set()
        self.pinyin: dict[str, list[str]] = {}

    def _syllables(self, text: str) -> list[str]:
        got = self.pinyin.get(text)
        if got is None:
            got = self.pinyin[text] = name_syllables(text)
        return got

    def _name(self, surname: str, gender: str) -> tuple[str, str, str]:
        pool = MALE if gender == "M" else FEMALE
        given = "".join(self.rng.choice(pool) for _ in range(self.rng.choice((1, 2, 2))))
        syll = self._syllables(surname) + [s for ch in given for s in self._syllables(ch)]
        return surname + given, "".join(syll), "".join(s[0] for s in syll)

    def _id_number(self, home: str, born: date, gender: str) -> str:
        area = id_area(home, born.year, self.rng)
        while True:
            order = self.rng.randrange(0, 500) * 2 + (1 if gender == "M" else 0)
            number = make_resident_id(area, born, order)
            if number not in self.numbers:
                self.numbers.add(number)
                return number

    def _born(self, age: int) -> date:
        return TODAY - timedelta(days=age * 365 + self.rng.randrange(0, 365))

    def _occupation(self, age: int) -> str:
        if age < 7:
            return "0002003"
        if age < 19:
            return "0002002"
        if age >= 62 and self.rng.random() < 0.8:
            return "0005002"
        return self.rng.choices(self.occ_codes, self.occ_weights)[0]

    def _mobile(self, age: int) -> str | None:
        if age < 14:
            return None
        return self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(0, 10**8):08d}"

    def households(self) -> Iterator[list[Person]]:
        rng = self.rng
        while True:
            place = rng.choices(self.places, self.place_weights)[0]
            county, county_name = rng.choice(place.counties)
            dlat, dlon = _offset(county, place.radius)
            lat = place.latitude + dlat + rng.gauss(0, 0.04)
            lon = place.longitude + dlon + rng.gauss(0, 0.04)
            lat, lon = min(max(lat, 21.2), 29.2), min(max(lon, 97.6), 106.1)
            branch = county + f"{rng.randrange(1, 4):02d}"
            manager = f"cm-{county}-{rng.randrange(1, 6):02d}"
            urban = county.endswith(("02", "03", "11", "12", "81")) or rng.random() < 0.3
            street = (f"{rng.choice(ROADS)}{rng.randrange(1, 400)}号" if urban else
                      f"{rng.choice(VILLAGE)}{rng.choice(VILLAGE)}村{rng.randrange(1, 12)}组")
            gps = rng.random() < 0.35
            surname = rng.choices(SURNAMES, SURNAME_WEIGHTS)[0]
            head_age = int(min(85, max(20, rng.gauss(44, 12))))
            members: list[tuple[int, str, str]] = []  # (age, gender, role)
            head_gender = "M" if rng.random() < 0.6 else "F"
            members.append((head_age, head_gender, "head"))
            if rng.random() < 0.7:
                members.append((max(18, head_age + rng.randint(-6, 4)),
                                "F" if head_gender == "M" else "M", "spouse"))
            for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 2, 3))):
                age = head_age - rng.randint(22, 36)
                if age >= 0:
                    members.append((age, "M" if rng.random() < 0.52 else "F", "child"))
            if head_age < 55 and rng.random() < 0.15:
                members.append((head_age + rng.randint(22, 32), "M" if rng.random() < 0.45
                                else "F", "parent"))
            people: list[Person] = []
            now = datetime(2021, 1, 1) + timedelta(seconds=rng.randrange(0, 5 * 365 * 86400))
            for age, gender, role in members:
                sur = surname if role in ("head", "child") else \
                    rng.choices(SURNAMES, SURNAME_WEIGHTS)[0]
                if role == "parent":
                    sur = surname if gender == "M" else sur
                name, pinyin, initials = self._name(sur, gender)
                born = self._born(age)
                occupation = self._occupation(age)
                office = occupation.startswith(("0001", "0002001", "0003", "0004"))
                mobile = self._mobile(age)
                row = {
                    "id": self.next_id, "name": name, "name_pinyin": pinyin,
                    "name_initials": initials, "gender": gender, "birth_date": born,
                    "id_type": "resident", "id_number": self._id_number(county, born, gender),
                    "mobile": mobile, "province": "云南省", "prefecture": place.name,
                    "county": county_name, "street": street, "region_code": county,
                    "occupation_code": occupation,
                    "employer": rng.choice(EMPLOYERS) if office and rng.random() < 0.7 else None,
                    "email": (f"{pinyin}{rng.randrange(1, 999)}@{rng.choice(MAIL)}"
                              if mobile and rng.random() < 0.25 else None),
                    "branch": branch, "manager_id": manager,
                    "latitude": round(lat + rng.gauss(0, 0.002), 6),
                    "longitude": round(lon + rng.gauss(0, 0.002), 6),
                    "location_source": "gps" if gps else "address",
                    "located_at": now, "created_at": now, "updated_at": now, "version": 1,
                }
                self.next_id += 1
                people.append(Person(row, []))
            head = people[0]
            for person, (_, _, role) in zip(people[1:], members[1:], strict=True):
                if role == "spouse":
                    head.relations.append((person.row["id"], "spouse"))
                    person.relations.append((head.row["id"], "spouse"))
                elif role == "child":
                    head.relations.append((person.row["id"], "child"))
                    person.relations.append((head.row["id"], "parent"))
                    if len(members) > 1 and members[1][2] == "spouse":
                        people[1].relations.append((person.row["id"], "child"))
                        person.relations.append((people[1].row["id"], "parent"))
                elif role == "parent":
                    head.relations.append((person.row["id"], "parent"))
                    person.relations.append((head.row["id"], "child"))
            yield people

    def people(self, count: int) -> Iterator[Person]:
        end = self.next_id + count
        for household in self.households():
            for person in household:
                if person.row["id"] >= end:
                    return
                # a relation to someone beyond the count is dropped
                person.relations = [(o, k) for o, k in person.relations if o < end]
                yield person


# --- loading -----------------------------------------------------------------------------------

CUSTOMER_COLUMNS = [c.name for c in customers.columns]
RELATION_COLUMNS = ["customer_id", "related_id", "kind", "created_at"]


def read_config(path: str) -> dict:
    import yaml

    pattern = re.compile(r"\$\{([^}:]+):?([^}]*)\}")
    text = Path(path).read_text()
    text = pattern.sub(lambda m: os.environ.get(m.group(1), m.group(2)), text)
    return yaml.safe_load(text)


class Loader:
    def __init__(self, uri: str) -> None:
        from customer.service import MIGRATIONS
        from invoke_centre.kit import make_engine, upgrade

        self.uri = uri
        self.engine = make_engine(uri)
        upgrade(uri, MIGRATIONS, engine=self.engine)
        self.postgres = self.engine.dialect.name == "postgresql"
        self.pending: list[tuple] = []

    def count(self) -> int:
        from sqlalchemy import func, select

        with self.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(customers)).scalar_one()

    def max_id(self) -> int:
        from sqlalchemy import func, select

        with self.engine.connect() as conn:
            return conn.execute(select(func.coalesce(func.max(customers.c.id), 0))).scalar_one()

    def load(self, people: Iterator[Person], total: int, progress=None) -> int:
        loaded = 0
        batch: list[Person] = []
        for person in people:
            batch.append(person)
            if len(batch) >= CHUNK:
                self._write(batch)
                loaded += len(batch)
                batch = []
                if progress:
                    progress(loaded)
        if batch:
            self._write(batch)
            loaded += len(batch)
            if progress:
                progress(loaded)
        if self.postgres:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(
                    "SELECT setval(pg_get_serial_sequence('customers', 'id'), "
                    "(SELECT COALESCE(MAX(id), 1) FROM customers))")
                conn.exec_driver_sql("ANALYZE customers")
                conn.exec_driver_sql("ANALYZE customer_relations")
        return loaded

    def _write(self, batch: list[Person]) -> None:
        # a household may straddle two batches: a relation waits until both people are in
        top = batch[-1].row["id"]
        rels = self.pending + [(p.row["id"], other, kind, p.row["created_at"]) for p in batch
                               for other, kind in p.relations]
        self.pending = [r for r in rels if r[1] > top]
        rels = [r for r in rels if r[1] <= top]
        if self.postgres:
            self._copy(batch, rels)
        else:
            self._insert(batch, rels)

    def _copy(self, batch: list[Person], rels: list[tuple]) -> None:
        buf = io.StringIO()
        w = csv.writer(buf)
        for p in batch:
            w.writerow(["" if p.row[c] is None else p.row[c] for c in CUSTOMER_COLUMNS])
        rbuf = io.StringIO()
        rw = csv.writer(rbuf)
        rw.writerows(rels)
        raw = self.engine.raw_connection()
        try:
            cur = raw.cursor()
            buf.seek(0)
            cur.copy_expert(f"COPY customers ({', '.join(CUSTOMER_COLUMNS)}) FROM STDIN "
                            "WITH (FORMAT csv)", buf)
            rbuf.seek(0)
            cur.copy_expert(f"COPY customer_relations ({', '.join(RELATION_COLUMNS)}) FROM STDIN "
                            "WITH (FORMAT csv)", rbuf)
            raw.commit()
        finally:
            raw.close()

    def _insert(self, batch: list[Person], rels: list[tuple]) -> None:
        from sqlalchemy import insert

        with self.engine.begin() as conn:
            conn.execute(insert(customers), [p.row for p in batch])
            if rels:
                conn.execute(insert(relations),
                             [dict(zip(RELATION_COLUMNS, r, strict=True)) for r in rels])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m customer.demo", description=__doc__.split("\n")[0])
    ap.add_argument("--config", help="the service's config.yaml (for DB_URI)")
    ap.add_argument("--db", help="database URI (instead of the config's DB_URI)")
    ap.add_argument("--count", type=int, default=2000, help="how many customers (default 2000)")
    ap.add_argument("--seed", type=int, default=2009, help="random seed (default 2009)")
    ap.add_argument("--append", action="store_true",
                    help="add to a database that has customers already")
    args = ap.parse_args(argv)
    uri = args.db or (read_config(args.config)["DB_URI"] if args.config else None)
    if not uri:
        ap.error("give --config or --db")
    loader = Loader(uri)
    have = loader.count()
    if have and not args.append:
        print(f"the customer database has {have} customers already; nothing loaded "
              "(--append adds more)")
        return 0
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    gen = Generator(args.seed, first_id=loader.max_id() + 1)
    started = time.perf_counter()
    with Progress(TextColumn("customers"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), disable=not sys.stderr.isatty()
                  and args.count < 100000) as progress:
        task = progress.add_task("load", total=args.count)
        n = loader.load(gen.people(args.count), args.count,
                        lambda done: progress.update(task, completed=done))
    took = time.perf_counter() - started
    print(f"loaded {n} customers into {loader.engine.url.render_as_string(hide_password=True)} "
          f"in {took:.1f} s ({n / took:,.0f}/s), seed {args.seed}")
    loader.engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
