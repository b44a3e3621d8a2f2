"""The service kit without a broker: manifests from declarations, context, unit of work."""

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select

from invoke_centre import wire
from invoke_centre.kit import (
    Caller,
    CallerContext,
    Database,
    Member,
    NotFound,
    UnitOfWork,
    build_manifest,
    requests_of,
    serves,
)
from invoke_centre.kit.membership import MemberInfo


class WeatherService:
    name = "weather"
    member = Member(version="2.1")
    caller = Caller()

    @serves("weather.forecast", permission="weather:read", timeout_ms=800,
            input_schema={"type": "object", "required": ["city"]})
    def forecast(self, params):
        """Forecast for a city."""
        if params["city"] == "nowhere":
            raise NotFound("no such city")
        return {"city": params["city"], "by": self.caller.user_id}

    @serves("weather.report", permission="weather:write", mutating=True)
    @serves("weather.report_legacy", permission="weather:write", mutating=True)
    def report(self, params):
        return {"reported": True}


def test_declarations_become_a_valid_manifest():
    m = build_manifest(WeatherService, version="2.1", instance="w-1", heartbeat_s=5)
    assert wire.check_manifest(m) == m
    by_name = {r["name"]: r for r in m["requests"]}
    assert set(by_name) == {"weather.forecast", "weather.report", "weather.report_legacy"}
    assert by_name["weather.forecast"]["summary"] == "Forecast for a city."
    assert by_name["weather.forecast"]["timeout_ms"] == 800
    assert by_name["weather.report_legacy"]["method"] == "report"
    assert by_name["weather.report"]["mutating"] is True


def test_one_method_with_two_names_is_one_rpc_entrypoint():
    entrypoints = WeatherService.report.nameko_entrypoints
    assert len(entrypoints) == 1 and len(requests_of(WeatherService)) == 3


def test_the_entrypoint_reads_its_caller():
    service = worker_factory(WeatherService, caller=CallerContext(user_id="agent-7"),
                             member=MemberInfo("weather", "w-1", "2.1"))
    assert service.forecast({"city": "Kunming"}) == {"city": "Kunming", "by": "agent-7"}
    with pytest.raises(NotFound):
        service.forecast({"city": "nowhere"})


def test_caller_context_from_headers():
    c = CallerContext.from_data({"request_id": "r1", "user_id": "u", "roles": "agent,manager",
                                 "permissions": "a:read,b:write", "deadline": 2_000_000_000_000,
                                 "branch": ""})
    assert c.roles == ("agent", "manager") and c.may("a:read") and not c.may("c:read")
    assert c.branch is None and c.deadline == 2_000_000_000
    assert CallerContext.from_data({"permissions": "*"}).may("anything")


def test_unit_of_work_rolls_back_unless_committed(tmp_path):
    from sqlalchemy.orm import sessionmaker

    from invoke_centre.db import make_engine

    meta = MetaData()
    things = Table("things", meta, Column("id", Integer, primary_key=True), Column("n", String))
    engine = make_engine(f"sqlite:///{tmp_path / 'k.db'}")
    meta.create_all(engine)

    class Things:
        def __init__(self, session):
            self.session = session

        def add(self, n):
            self.session.execute(insert(things).values(n=n))

    factory = sessionmaker(bind=engine)
    with UnitOfWork(factory, {"things": Things}) as uow:
        uow.things.add("kept")
        uow.commit()
    with UnitOfWork(factory, {"things": Things}) as uow:
        uow.things.add("dropped")  # no commit
    with pytest.raises(RuntimeError):
        with UnitOfWork(factory, {"things": Things}) as uow:
            uow.things.add("half")
            raise RuntimeError("boom")
    with engine.connect() as conn:
        assert [r.n for r in conn.execute(select(things))] == ["kept"]


def test_database_dependency_runs_migrations(tmp_path):
    from nameko.containers import ServiceContainer

    class Svc:
        name = "svc"
        uow = Database(migrations=None, metadata=MetaData())

        @serves("svc.ping", permission="svc:read")
        def ping(self, params):
            return "pong"

    container = ServiceContainer(Svc, {"DB_URI": f"sqlite:///{tmp_path / 's.db'}",
                                       "AMQP_URI": "memory://"})
    dep = next(d for d in container.dependencies if isinstance(d, Database))
    dep.setup()
    assert isinstance(dep.get_dependency(None), UnitOfWork)
    dep.stop()


def test_grants_scope_objects_by_branch_subtree_and_owner():
    c = CallerContext.from_data({"user_id": "agent-7", "permissions": "customer:read,customer:pii",
                                 "grants": "customer:read@5301,customer:pii@self,"
                                           "policy:write@530102/life"})
    assert c.may_at("customer:read", branch="530102")
    assert not c.may_at("customer:read", branch="5303")
    assert c.may_at("customer:pii", branch="5303", owner="agent-7")
    assert not c.may_at("customer:pii", branch="530102", owner="agent-8")
    assert c.may_at("policy:write", branch="53010201", line="life")
    assert not c.may_at("policy:write", branch="53010201", line="property")
    assert c.branch_prefixes("customer:read") == ("5301",)
    assert c.only_own("customer:pii") and not c.only_own("customer:read")
    everywhere = CallerContext.from_data({"permissions": "*", "grants": "*@*"})
    assert everywhere.may_at("x:y", branch="99") and everywhere.branch_prefixes("x:y") is None


def test_audit_events_mask_personal_data():
    from invoke_centre.kit import audit_event

    e = audit_event("sensitive_read", source="customer", object_="customer:1",
                    params={"id_number": "530102199001011234", "mobile": "13812345678",
                            "password": "hunter22", "nested": [{"phone": "13900001111"}]})
    assert e["params"] == {"id_number": "530102********1234", "mobile": "138****5678",
                           "password": "***", "nested": [{"phone": "139****1111"}]}
    with pytest.raises(ValueError):
        audit_event("gossip", source="x")
