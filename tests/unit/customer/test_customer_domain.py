"""The customer domain without a database: ID numbers, mobiles, pinyin, masking, scopes,
versions, cursors and analyses."""

from datetime import date, datetime
from types import SimpleNamespace

import customer_testing  # noqa: F401  (puts the service on the path)
import pytest
from customer import domain, schemas
from customer.domain import Customer, Scope
from customer.exceptions import Invalid, StaleVersion
from stdnum.cn import ric

# --- GB 11643 resident ID numbers ---------------------------------------------------------------

def test_the_standards_own_examples_are_valid():
    a = domain.resident_id("11010519491231002X")
    assert (a.birth_date, a.gender, a.area_code) == (date(1949, 12, 31), "F", "110105")
    b = domain.resident_id("440524188001010014")
    assert (b.birth_date, b.gender) == (date(1880, 1, 1), "M")


def test_a_lower_case_x_and_spaces_are_accepted():
    assert domain.resident_id(" 11010519491231002x ").number == "11010519491231002X"


@pytest.mark.parametrize("number, field_message", [
    ("11010519491231002", "must have 18 characters"),
    ("110105194912310021", "check digit is wrong"),
    ("11010519491231002A", "must be 17 digits and a digit or X"),
])
def test_malformed_numbers_are_refused(number, field_message):
    with pytest.raises(Invalid) as err:
        domain.resident_id(number)
    assert err.value.fields == {"id_number": [field_message]}


def test_a_date_that_does_not_exist_is_refused():
    number = domain.make_resident_id("530102", date(1990, 1, 1), 123)
    bad = number[:10] + "0230" + number[14:17]
    bad += ric.calc_check_digit(bad + "0")
    with pytest.raises(Invalid) as err:
        domain.resident_id(bad)
    assert "birth date" in err.value.fields["id_number"][0]


def test_a_future_birth_date_is_refused():
    number = domain.make_resident_id("530102", date(2090, 1, 1), 11)
    with pytest.raises(Invalid):
        domain.resident_id(number)


def test_an_unknown_area_code_is_refused():
    number = domain.make_resident_id("539999", date(1990, 1, 1), 11)
    with pytest.raises(Invalid) as err:
        domain.resident_id(number)
    assert err.value.fields == {"id_number": ["area code is unknown"]}


def test_a_kunming_card_older_than_its_district_code_is_accepted():
    # 530102 (五华区) dates from 1983; people born before hold such cards all the same
    number = domain.make_resident_id("530102", date(1965, 1, 1), 123)
    assert not ric.is_valid(number)  # python-stdnum's stricter reading
    assert domain.resident_id(number).gender == "M"


def test_make_resident_id_makes_valid_numbers():
    n = domain.make_resident_id("532901", date(2001, 2, 3), 42)
    assert ric.is_valid(n) and domain.resident_id(n).gender == "F"


# --- mobile numbers -------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["13812345678", "+86 138 1234 5678", "138-1234-5678",
                                  "8613812345678"])
def test_chinese_mobiles_are_stored_as_eleven_digits(text):
    assert domain.normalise_mobile(text) == "13812345678"


@pytest.mark.parametrize("text", ["12345", "0871-65123456", "23812345678", "abc"])
def test_what_is_not_a_mobile_is_refused(text):
    with pytest.raises(Invalid) as err:
        domain.normalise_mobile(text)
    assert "mobile" in err.value.fields


def test_a_foreign_mobile_is_kept_in_e164():
    assert domain.normalise_mobile("+44 7911 123456") == "+447911123456"


# --- pinyin ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name, keys", [
    ("张三", ("zhangsan", "zs")),
    ("李四", ("lisi", "ls")),
    ("欧阳娜娜", ("ouyangnana", "oynn")),
    ("单雄信", ("shanxiongxin", "sxx")),    # 单 as a surname is shan
    ("曾国藩", ("zengguofan", "zgf")),
    ("吕布", ("lvbu", "lb")),
    ("Anna 李", ("annali", "al")),
])
def test_names_get_pinyin_and_initials(name, keys):
    assert domain.name_keys(name) == keys


# --- masking -------------------------------------------------------------------------------------

def _customer(**kw) -> Customer:
    base = {"name": "张三", "gender": "M", "birth_date": date(1990, 1, 1),
            "id_type": "resident", "id_number": "530102199001011234", "mobile": "13812345678",
            "branch": "530102", "manager_id": "agent-1", "id": 7,
            "created_at": datetime(2024, 1, 1), "updated_at": datetime(2024, 1, 1)}
    base.update(kw)
    return Customer(**base)


def test_id_and_mobile_are_masked_unless_allowed():
    masked = schemas.present(_customer(), unmasked=False)
    assert masked["id_number"] == "530102********1234"
    assert masked["mobile"] == "138****5678"
    assert masked["pii_masked"] is True
    plain = schemas.present(_customer(), unmasked=True)
    assert plain["id_number"] == "530102199001011234" and plain["mobile"] == "13812345678"
    assert schemas.flat(_customer(), unmasked=False)["id_number"] == "530102********1234"


# --- scopes --------------------------------------------------------------------------------------

def _caller(*grants, user="agent-1"):
    from invoke_centre.kit import CallerContext

    return CallerContext.from_data({"user_id": user, "grants": ",".join(grants),
                                    "permissions": ",".join({g.split("@")[0] for g in grants})})


def test_scopes_follow_the_grants():
    branch = Scope.of(_caller("customer:read@530102"), "customer:read")
    assert branch.covers("53010201", None) and not branch.covers("530103", "agent-1")
    own = Scope.of(_caller("customer:read@self"), "customer:read")
    assert own.covers("530103", "agent-1") and not own.covers("530102", "agent-2")
    both = Scope.of(_caller("customer:read@5301", "customer:read@self"), "customer:read")
    assert both.covers("530103", None) and both.covers("5325", "agent-1")
    assert Scope.of(_caller("*@*"), "customer:read").everywhere
    assert Scope.of(_caller("customer:write@5301"), "customer:read").nothing


# --- creating and changing -------------------------------------------------------------------

AGENT = SimpleNamespace(user_id="agent-1", branch="530102", grants=())


def test_a_resident_gets_birth_date_and_gender_from_the_id_number():
    number = domain.make_resident_id("530102", date(1990, 5, 6), 124)
    c = domain.new_customer({"name": " 张  三 ", "id_number": number, "mobile": "+8613812345678",
                             "region_code": "530102"}, caller=AGENT)
    assert (c.birth_date, c.gender, c.name, c.mobile) == (date(1990, 5, 6), "F", "张 三",
                                                           "13812345678")
    assert (c.province, c.prefecture, c.county) == ("云南省", "昆明市", "五华区")
    assert (c.branch, c.manager_id, c.version, c.name_initials) == ("530102", "agent-1", 1, "zs")


def test_every_wrong_field_is_reported_at_once():
    number = domain.make_resident_id("530102", date(1990, 5, 6), 124)
    with pytest.raises(Invalid) as err:
        domain.new_customer({"name": "张三", "id_number": number, "gender": "M",
                             "occupation_code": "9999999", "mobile": "123",
                             "email": "nope"}, caller=AGENT)
    assert set(err.value.fields) == {"gender", "occupation_code", "mobile", "email"}


def test_a_stale_version_is_refused_and_a_new_id_number_rederives():
    c = domain.new_customer({"name": "张三", "id_number": domain.make_resident_id(
        "530102", date(1990, 5, 6), 124)}, caller=AGENT)
    with pytest.raises(StaleVersion):
        domain.change(c, {"name": "张三丰"}, version=2)
    new_number = domain.make_resident_id("530102", date(1980, 1, 2), 11)
    updated, changed = domain.change(c, {"id_number": new_number}, version=1)
    assert (updated.birth_date, updated.gender, updated.version) == (date(1980, 1, 2), "M", 2)
    assert set(changed) == {"id_number", "birth_date", "gender"}
    same, nothing = domain.change(updated, {"name": updated.name}, version=2)
    assert nothing == [] and same.version == 2


def test_moves_are_told_apart_from_other_changes():
    assert domain.moved(["street"]) and domain.moved(["branch"])
    assert not domain.moved(["email", "employer"])


def test_relations_are_stored_both_ways():
    assert domain.relation_pair("parent", 1, 2) == ((1, 2, "parent"), (2, 1, "child"))
    with pytest.raises(Invalid):
        domain.relation_pair("parent", 1, 1)


# --- searching -----------------------------------------------------------------------------------

@pytest.mark.parametrize("q, expect", [
    ("530102199001011234", {"id_number": "530102199001011234"}),
    ("138 1234 5678", {"mobile": "13812345678"}),
    ("zs", {"name": "zs", "name_mode": "initials", "sort": "name_initials"}),
    ("张", {"name": "张", "name_mode": "prefix", "sort": "name"}),
])
def test_the_one_search_box_guesses_what_was_typed(q, expect):
    crit = domain.criteria({"q": q})
    assert {k: getattr(crit, k) for k in expect} == expect


def test_age_range_becomes_birth_dates():
    crit = domain.criteria({"age_min": 30, "age_max": 39}, today=date(2025, 6, 15))
    assert crit.born_before == date(1995, 6, 15) and crit.born_after == date(1985, 6, 16)


def test_cursors_round_trip_and_belong_to_their_sort():
    c = _customer(name="王五")
    cur = domain.encode_cursor(c, "birth_date")
    assert domain.decode_cursor(cur, "birth_date") == (date(1990, 1, 1), 7)
    with pytest.raises(Invalid):
        domain.decode_cursor(cur, "name")
    with pytest.raises(Invalid):
        domain.decode_cursor("garbage!", "name")


def test_analysis_summarises_counts_per_group():
    rows = [("5301", "M", "30-39", "0001001", 3), ("5301", "F", "60+", None, 1),
            ("5325", "F", "18-29", "0008001", 2)]
    groups = domain.summarise(rows)
    assert [g["group"] for g in groups] == ["5301", "5325"]
    assert groups[0]["total"] == 4 and groups[0]["gender"] == {"M": 3, "F": 1}
    assert groups[0]["age"]["30-39"] == 3 and groups[0]["risk_class"] == {"1": 3, "unknown": 1}
    assert groups[1]["risk_class"] == {"6": 2}


def test_import_cells_become_values():
    values = domain.row_values({"name": " 张三 ", "gender": "男", "id_type": "居民身份证",
                                "id_number": "530102198503041234", "birth_date": "1985-03-04",
                                "latitude": "25.04", "mobile": 13812345678.0, "email": ""})
    assert values == {"name": "张三", "gender": "M", "id_type": "resident",
                      "id_number": "530102198503041234", "birth_date": date(1985, 3, 4),
                      "latitude": 25.04, "mobile": "13812345678"}
    with pytest.raises(Invalid) as err:
        domain.row_values({"birth_date": "yesterday", "longitude": "east"})
    assert set(err.value.fields) == {"birth_date", "longitude"}
