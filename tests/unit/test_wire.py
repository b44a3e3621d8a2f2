"""The manifest contract and the digests."""

import pytest

from invoke_centre import wire


def _manifest(**over):
    m = {"service": "weather", "version": "1.0.0", "instance": "weather-1",
         "requests": [{"name": "weather.forecast", "method": "forecast",
                       "permission": "weather:read"}]}
    return {**m, **over}


def test_defaults_are_filled():
    m = wire.check_manifest(_manifest())
    req = m["requests"][0]
    assert m["heartbeat_s"] == wire.DEFAULT_HEARTBEAT_S
    assert req["timeout_ms"] == wire.DEFAULT_TIMEOUT_MS and req["mutating"] is False
    assert req["sensitivity"] == "normal" and req["input_schema"] == {"type": "object"}


@pytest.mark.parametrize("bad, where", [
    ({"service": "Weather Service"}, "service"),
    ({"requests": "all"}, "requests"),
    ({"requests": [{"name": "forecast", "method": "f", "permission": "p"}]}, "requests.0.name"),
    ({"requests": [{"name": "weather.forecast", "method": "f"}]}, "requests.0"),
    ({"requests": [{"name": "weather.f", "method": "f", "permission": "p",
                    "sensitivity": "secret"}]}, "requests.0.sensitivity"),
    ({"requests": [{"name": "weather.f", "method": "f", "permission": "p",
                    "timeout_ms": 0}]}, "requests.0.timeout_ms"),
    ({"heartbeat_s": 0}, "heartbeat_s"),
])
def test_bad_manifests_name_the_field(bad, where):
    with pytest.raises(wire.ManifestError) as err:
        wire.check_manifest(_manifest(**bad))
    assert where in err.value.fields


def test_a_name_twice_is_refused():
    req = {"name": "weather.f", "method": "f", "permission": "p"}
    with pytest.raises(wire.ManifestError) as err:
        wire.check_manifest(_manifest(requests=[req, req]))
    assert "weather.f" in err.value.fields["requests"][0]


def test_digest_ignores_key_order_and_instance():
    a = _manifest()
    b = dict(reversed(list(_manifest(instance="weather-2").items())))
    assert wire.manifest_digest(a) == wire.manifest_digest(b)
    assert wire.manifest_digest(a) != wire.manifest_digest(_manifest(version="2"))
