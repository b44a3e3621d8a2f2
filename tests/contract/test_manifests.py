"""Every service's declarations make a manifest that satisfies the wire contract.

Services are found, not listed: every ``services/<name>/<name>/service.py``,
plus the outsider used by the integration tests.
"""

import importlib.util
import sys
from pathlib import Path

import pytest
from nameko.extensions import DependencyProvider

from invoke_centre import wire
from invoke_centre.kit import Member, build_manifest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(ROOT.glob("services/*/*/service.py")) + [ROOT / "tests/outsider/quotes.py"]


def _service_classes(path: Path):
    sys.path.insert(0, str(path.parent.parent if path.name == "service.py" else path.parent))
    try:
        spec = importlib.util.spec_from_file_location(f"_contract_{path.parent.name}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.pop(0)
    return [obj for obj in vars(module).values()
            if isinstance(obj, type) and any(isinstance(v, Member) for v in vars(obj).values())]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_manifest_satisfies_the_contract(path):
    classes = _service_classes(path)
    assert classes, f"{path} declares no service with a Member"
    for cls in classes:
        m = build_manifest(cls, version="1", instance=f"{cls.name}-test", heartbeat_s=5)
        assert wire.check_manifest(m) == m
        assert m["requests"], f"{cls.name} serves no named request"
        for req in m["requests"]:
            assert req["name"].split(".")[0] in (cls.name, cls.name.rstrip("s")), req["name"]
            assert callable(getattr(cls, req["method"]))
            assert req["input_schema"].get("type") == "object"
        assert all(isinstance(v, DependencyProvider) or not hasattr(v, "bind")
                   for v in vars(cls).values())
