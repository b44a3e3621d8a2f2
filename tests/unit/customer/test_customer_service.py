"""The customer service's entrypoints with a real SQLite unit of work and mocked events and
audit (no broker): what an agent on the phone notices."""

import base64
import io
from datetime import date

import pytest
from customer import files
from customer_testing import caller, resident

from invoke_centre.kit import Conflict, Forbidden, NotFound, ValidationError

AGENT = caller("agent-1", "530102", "customer:read@530102", "customer:write@530102")
AGENT_PII = caller("agent-1", "530102", "customer:read@530102", "customer:write@530102",
                   "customer:pii@530102", "customer:import@530102", "customer:export@530102",
                   "customer:analyse@530102")
OTHER = caller("agent-9", "530103", "customer:read@530103", "customer:write@530103")
OPERATOR = caller("operator", "53", "*@*")


def _new(w, name="张三", **kw):
    params = {"name": name, "id_number": kw.pop("id_number", resident()),
              "mobile": "13812345678", **kw}
    return w.create_customer(params)


def test_create_answers_masked_and_tells_the_others(worker):
    w = worker(AGENT)
    c = _new(w)
    assert c["id"] and c["version"] == 1 and c["name_initials"] == "zs"
    assert c["id_number"] == resident()[:6] + "********" + resident()[-4:]
    assert c["mobile"] == "138****5678"
    assert c["birth_date"] == "1985-03-04" and c["gender"] == "M"
    assert (c["branch"], c["manager_id"]) == ("530102", "agent-1")
    w.dispatch.assert_called_once()
    assert w.dispatch.call_args[0][0] == "customer_created"
    assert "id_number" not in w.dispatch.call_args[0][1]
    w.audit.sensitive_read.assert_not_called()


def test_an_unmasked_answer_is_audited(worker):
    w = worker(AGENT_PII)
    c = _new(w)
    assert c["id_number"] == resident() and c["pii_masked"] is False
    w.audit.sensitive_read.assert_called_once_with(object=f"customer:{c['id']}",
                                                   fields=["id_number", "mobile"])


def test_a_second_record_with_the_same_id_number_is_refused_naming_the_first(worker):
    w = worker(AGENT)
    first = _new(w)
    with pytest.raises(Conflict) as err:
        _new(w, name="张三三")
    assert str(first["id"]) in err.value.message
    assert err.value.fields["existing_id"] == [str(first["id"])]


def test_bad_data_is_a_400_with_fields(worker):
    w = worker(AGENT)
    with pytest.raises(ValidationError) as err:
        w.create_customer({"name": "张三", "id_number": resident()[:-1] + "0"
                           if resident()[-1] != "0" else resident()[:-1] + "1"})
    assert "id_number" in err.value.fields
    with pytest.raises(ValidationError) as err:
        w.create_customer({"name": "张三", "id_number": resident(), "colour": "red"})
    assert err.value.fields == {"colour": ["Unknown field."]}


def test_update_with_optimistic_versions(worker):
    w = worker(AGENT)
    c = _new(w)
    w.dispatch.reset_mock()
    v2 = w.update_customer({"id": c["id"], "version": 1, "employer": "云南白药",
                            "street": "人民中路 1 号"})
    assert v2["version"] == 2 and v2["employer"] == "云南白药"
    assert set(v2["changed"]) == {"employer", "street"}
    events = [call[0][0] for call in w.dispatch.call_args_list]
    assert events == ["customer_changed", "customer_moved"]
    with pytest.raises(Conflict) as err:
        w.update_customer({"id": c["id"], "version": 1, "employer": "别的"})
    assert err.value.fields["version"] == ["is 2 now; read it again"]


def test_out_of_reach_customers_are_404_to_read_and_write(worker):
    c = _new(worker(AGENT))
    other = worker(OTHER)
    for call in (lambda: other.get_customer({"id": c["id"]}),
                 lambda: other.update_customer({"id": c["id"], "version": 1, "email": "a@b.cn"}),
                 lambda: other.locate_customer({"id": c["id"], "latitude": 25, "longitude": 102})):
        with pytest.raises(NotFound):
            call()
    assert other.search_customers({"q": "zs"})["items"] == []


def test_seeing_is_not_writing(worker):
    c = _new(worker(AGENT))
    reader = worker(caller("mgr-1", "5301", "customer:read@5301", "customer:write@self"))
    assert reader.get_customer({"id": c["id"]})["name"] == "张三"
    with pytest.raises(Forbidden):
        reader.update_customer({"id": c["id"], "version": 1, "email": "a@b.cn"})
    with pytest.raises(Forbidden):  # nor moving one's own customer out of one's reach
        worker(AGENT).update_customer({"id": c["id"], "version": 1, "branch": "530103"})


def test_search_by_every_key(worker):
    w = worker(OPERATOR)
    people = [("张三", date(1985, 3, 4)), ("张三丰", date(1950, 1, 1)), ("赵四", date(2000, 2, 2)),
              ("李四", date(1990, 5, 5)), ("张伟", date(1995, 6, 6))]
    ids = {}
    for i, (name, born) in enumerate(people):
        number = resident("530102", born, 11 + 2 * i)
        ids[name] = _new(w, name=name, id_number=number, mobile=f"1391234{5670 + i}",
                         branch="530102" if i % 2 == 0 else "530103",
                         occupation_code="0001001" if i < 3 else "0009001")["id"]

    def names(params):
        return [c["name"] for c in w.search_customers(params)["items"]]

    assert names({"q": "zs"}) == ["张三", "赵四", "张三丰"]   # by initials: zs, zs, zsf
    assert names({"name": "zsf", "name_match": "initials"}) == ["张三丰"]
    assert names({"q": "张三"}) == ["张三", "张三丰"]
    assert names({"name": "张三", "name_match": "exact"}) == ["张三"]
    assert names({"name": "zhang", "name_match": "pinyin"}) == ["张三", "张三丰", "张伟"]
    assert names({"q": resident("530102", date(1990, 5, 5), 17)}) == ["李四"]
    assert names({"q": "13912345674"}) == ["张伟"]
    assert names({"mobile": "+86 139 1234 5670"}) == ["张三"]
    assert set(names({"branch": "530103"})) == {"张三丰", "李四"}
    assert set(names({"occupation_code": "0009001"})) == {"李四", "张伟"}
    assert names({"age_min": 70}) == ["张三丰"]
    assert names({"age_max": 35, "sort": "birth_date"}) == ["张伟", "赵四"]
    assert names({"sort": "birth_date", "order": "desc", "limit": 2}) == ["赵四", "张伟"]


def test_cursor_pagination_walks_every_row_once(worker):
    w = worker(OPERATOR)
    for i in range(7):
        _new(w, name=f"张{'一二三四五六七'[i]}", id_number=resident("530102", date(1980, 1, 1 + i),
                                                                   11 + i), mobile=None)
    seen, cursor = [], None
    while True:
        page = w.search_customers({"q": "z", "limit": 3, **({"cursor": cursor} if cursor else {})})
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 7 == len(set(seen))
    with pytest.raises(ValidationError):
        w.search_customers({"q": "z", "cursor": "not-a-cursor"})


def test_household_relations_show_on_get(worker):
    w = worker(AGENT_PII)
    a = _new(w, name="王父")
    b = _new(w, name="王子", id_number=resident("530102", date(2010, 1, 1), 13))
    r = w.relate_customers({"customer_id": a["id"], "related_id": b["id"], "kind": "child"})
    assert (r["inverse"], r["added"]) == ("parent", True)
    assert w.relate_customers({"customer_id": a["id"], "related_id": b["id"],
                               "kind": "child"})["added"] is False
    got = w.get_customer({"id": b["id"]})
    assert [(x["kind"], x["id"], x["name"]) for x in got["relations"]] == [
        ("parent", a["id"], "王父")]
    assert w.unrelate_customers({"customer_id": b["id"], "related_id": a["id"]})["removed"] == 2
    assert w.get_customer({"id": a["id"]})["relations"] == []
    with pytest.raises(ValidationError):
        w.relate_customers({"customer_id": a["id"], "related_id": a["id"], "kind": "spouse"})


def test_a_gps_fix_is_stored_and_told(worker):
    w = worker(AGENT)
    c = _new(w)
    w.dispatch.reset_mock()
    fix = w.locate_customer({"id": c["id"], "latitude": 25.04, "longitude": 102.71,
                             "accuracy_m": 8})
    assert fix["version"] == 2 and fix["location"]["source"] == "gps"
    name, payload = w.dispatch.call_args[0]
    assert name == "customer_moved" and payload["latitude"] == 25.04
    with pytest.raises(Conflict):
        w.locate_customer({"id": c["id"], "latitude": 25, "longitude": 102, "version": 1})


def test_analysis_counts_the_mix_in_reach(worker):
    op = worker(OPERATOR)
    _new(op, name="甲", id_number=resident("530102", date(1985, 1, 1), 11), region_code="530102",
         occupation_code="0008001", branch="530102")
    _new(op, name="乙", id_number=resident("530102", date(1955, 1, 1), 12), region_code="532901",
         branch="530102")
    _new(op, name="丙", id_number=resident("530102", date(1995, 1, 1), 14), region_code="532901",
         branch="532901")
    mine = worker(AGENT_PII).analyse_customers({"by": "prefecture"})
    assert mine["total"] == 2
    assert {g["label"]: g["total"] for g in mine["groups"]} == {"昆明市": 1, "大理白族自治州": 1}
    everything = op.analyse_customers({"by": "branch"})
    assert everything["total"] == 3
    top = everything["groups"][0]
    assert top["group"] == "530102" and top["gender"] == {"M": 1, "F": 1}
    assert top["risk_class"] == {"6": 1, "unknown": 1}
    with pytest.raises(Forbidden):
        worker(AGENT).analyse_customers({})


# --- import and export ---------------------------------------------------------------------------

HEADER = "name,id_number,mobile,occupation_code,branch\n"


def _csv(*lines: str) -> str:
    return base64.b64encode((HEADER + "\n".join(lines) + "\n").encode()).decode()


def test_import_reports_every_bad_row_and_stores_nothing_wrong(worker):
    w = worker(AGENT_PII)
    existing = _new(w, name="老客户", id_number=resident("530102", date(1970, 1, 1), 11))
    good1 = resident("530102", date(1990, 1, 1), 13)
    good2 = resident("530102", date(1991, 1, 1), 15)
    bad_check = resident("530102", date(1992, 1, 1), 17)
    bad_check = bad_check[:-1] + ("1" if bad_check[-1] != "1" else "2")
    content = _csv(f"甲,{good1},13800000001,0001001,530102",
                   f"乙,{bad_check},13800000002,0001001,530102",          # row 3: check digit
                   f"丙,{good2},13800000003,9999999,530102",              # row 4: occupation
                   f"丁,{existing['id_number'][:0] + resident('530102', date(1970, 1, 1), 11)}"
                   ",13800000004,,530102",                               # row 5: in the database
                   f"戊,{good1},13800000005,,530102",                     # row 6: repeats row 2
                   f"己,{resident('530102', date(1993, 1, 1), 19)},13800000006,,530103")  # scope
    report = w.import_customers({"format": "csv", "content_base64": content})
    assert report["stored"] == 0 and report["rows"] == 6
    assert [(e["row"], sorted(e["fields"])) for e in report["errors"]] == [
        (3, ["id_number"]), (4, ["occupation_code"]), (5, ["id_number"]), (6, ["id_number"]),
        (7, ["branch"])]
    assert str(existing["id"]) in report["errors"][2]["message"]
    assert w.search_customers({"q": "j"})["items"] == []

    report = w.import_customers({"format": "csv", "content_base64": content,
                                 "mode": "valid_rows"})
    assert report["stored"] == 1 and report["refused"] == 5
    assert [c["name"] for c in w.search_customers({"branch": "530102", "sort": "id"})["items"]] \
        == ["老客户", "甲"]


def test_import_xlsx_and_export_round_trip(worker):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["Name", "ID_Number", "birth_date", "region_code", "latitude", "longitude"])
    sheet.append(["张三", resident("530102", date(1985, 3, 4), 123), "1985-03-04", "530102",
                  25.04, 102.71])
    sheet.append(["李四", resident("530102", date(1990, 5, 5), 17), None, None, None, None])
    buf = io.BytesIO()
    book.save(buf)
    w = worker(AGENT_PII)
    report = w.import_customers({"format": "xlsx",
                                 "content_base64": base64.b64encode(buf.getvalue()).decode()})
    assert report["stored"] == 2, report
    first = w.get_customer({"id": report["stored_ids"][0]})
    assert first["address"]["county"] == "五华区" and first["location"]["source"] == "address"

    for fmt in ("csv", "xlsx"):
        out = w.export_customers({"format": fmt})
        rows = files.read_table(fmt, base64.b64decode(out["content_base64"]))
        assert out["rows"] == 2 and [r["name"] for r in rows] == ["张三", "李四"]
        assert str(rows[0]["id_number"]) == resident("530102", date(1985, 3, 4), 123)
    masked = worker(caller("agent-2", "530102", "customer:export@530102")).export_customers(
        {"format": "csv"})
    text = base64.b64decode(masked["content_base64"]).decode("utf-8-sig")
    assert "530102********" in text and resident("530102", date(1985, 3, 4), 123) not in text


def test_import_refuses_what_is_not_a_table(worker):
    w = worker(AGENT_PII)
    with pytest.raises(ValidationError):
        w.import_customers({"format": "csv", "content_base64": "%%%"})
    with pytest.raises(ValidationError):
        w.import_customers({"format": "xlsx", "content_base64": base64.b64encode(
            b"not a zip").decode()})
    with pytest.raises(ValidationError):
        w.import_customers({"format": "csv", "content_base64": base64.b64encode(
            b"who,what\n1,2\n").decode()})


def test_dictionaries_list_codes(worker):
    d = worker(AGENT).customer_dictionaries({})
    assert {"occupations", "relationships", "id_types"} <= set(d)
    assert any(o["code"] == "0008001" and o["risk_class"] == 6 for o in d["occupations"])
