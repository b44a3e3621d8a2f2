"""The routing table on a real (in-memory SQLite) database."""

import pytest
from sqlalchemy.orm import sessionmaker

from invoke_centre import registry
from invoke_centre.db import make_engine
from invoke_centre.models import Base


@pytest.fixture
def session():
    engine = make_engine("sqlite://")
    Base.metadata.create_all(engine)
    with sessionmaker(bind=engine)() as s:
        yield s


def manifest(service="weather", version="1", names=("weather.forecast",), **req):
    return {"service": service, "version": version, "instance": f"{service}-1",
            "requests": [{"name": n, "method": n.split(".")[1], "permission": f"{service}:read",
                          **req} for n in names]}


def test_a_new_manifest_is_a_new_version_and_the_same_is_not(session):
    assert registry.accept_manifest(session, manifest(), source="announced", actor="w-1")
    v1 = registry.current_version(session)
    assert not registry.accept_manifest(session, {**manifest(), "instance": "weather-2"},
                                        source="announced", actor="w-2")
    assert registry.current_version(session) == v1
    assert registry.accept_manifest(session, manifest(version="2"), source="announced",
                                    actor="w-3")
    assert registry.current_version(session) == v1 + 1
    assert registry.load_table(session).routes["weather.forecast"].service_version == "2"


def test_operator_settings_outlive_re_announcement(session):
    registry.accept_manifest(session, manifest(), source="announced", actor="w")
    registry.change_route(session, "weather.forecast", actor="op", enabled=False, timeout_ms=99)
    registry.accept_manifest(session, manifest(version="2"), source="announced", actor="w")
    route = registry.load_table(session).routes["weather.forecast"]
    assert route.enabled is False and route.timeout_ms == 99 and route.service_version == "2"


def test_first_claim_on_a_name_wins(session):
    registry.accept_manifest(session, manifest(), source="announced", actor="w")
    registry.accept_manifest(session, manifest(service="rogue", names=("weather.forecast",
                                                                       "rogue.own")),
                             source="announced", actor="r")
    routes = registry.load_table(session).routes
    assert routes["weather.forecast"].service == "weather"
    assert routes["rogue.own"].service == "rogue"


def test_aliases(session):
    registry.accept_manifest(session, manifest(), source="announced", actor="w")
    registry.set_alias(session, "weather.today", "weather.forecast", actor="op")
    route = registry.load_table(session).routes["weather.today"]
    assert route.alias_of == "weather.forecast" and route.method == "forecast"
    with pytest.raises(registry.RegistryError) as err:
        registry.set_alias(session, "weather.forecast", "weather.today", actor="op")
    assert err.value.status == 404  # an alias cannot point at an alias
    with pytest.raises(registry.RegistryError):
        registry.change_route(session, "weather.today", actor="op", enabled=False)
    registry.remove_alias(session, "weather.today", actor="op")
    assert "weather.today" not in registry.load_table(session).routes


def test_changes_are_listed_in_order(session):
    registry.accept_manifest(session, manifest(), source="announced", actor="w")
    registry.change_route(session, "weather.forecast", actor="op", permission="weather:x")
    kinds = [(c.kind, c.actor) for c in registry.list_changes(session)]
    assert kinds == [("manifest", "w"), ("route", "op")]


def test_instances_seen_gone_and_swept(session):
    m = {**manifest(), "heartbeat_s": 1}
    registry.seen_instance(session, m, announce=True)
    registry.seen_instance(session, {"service": "weather", "instance": "other"}, announce=False)
    assert [i.id for i in registry.list_instances(session)] == ["weather-1"]
    inst = registry.list_instances(session)[0]
    inst.last_seen = registry.utcnow().replace(year=2000)
    assert registry.sweep_instances(session) == 1
    assert registry.list_instances(session)[0].gone_at is not None


def test_a_boolean_is_not_a_timeout(session):
    registry.accept_manifest(session, manifest(), source="announced", actor="w")
    with pytest.raises(registry.RegistryError) as err:
        registry.change_route(session, "weather.forecast", actor="op", timeout_ms=True)
    assert "timeout_ms" in err.value.fields


def test_an_operator_sets_a_routes_protection(session):
    registry.accept_manifest(session, manifest(), source="announced", actor="w")
    route = registry.change_route(session, "weather.forecast", actor="op", sensitivity="sealed")
    assert route.sensitivity == "sealed"
    with pytest.raises(registry.RegistryError) as err:
        registry.change_route(session, "weather.forecast", actor="op", sensitivity="secret")
    assert "sensitivity" in err.value.fields
