"""Helpers of the customer service's tests: callers with grants and valid resident IDs."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

SERVICE_ROOT = Path(__file__).resolve().parents[3] / "services" / "customer"
if str(SERVICE_ROOT) not in sys.path:
    sys.path.insert(0, str(SERVICE_ROOT))

from invoke_centre.kit import CallerContext  # noqa: E402


def caller(user_id: str = "agent-1", branch: str = "530102", *grants: str) -> CallerContext:
    perms = sorted({g.partition("@")[0] for g in grants})
    return CallerContext.from_data({"user_id": user_id, "branch": branch, "roles": "agent",
                                    "permissions": ",".join(perms), "grants": ",".join(grants)})


def resident(area: str = "530102", born: date = date(1985, 3, 4), order: int = 123) -> str:
    from customer.domain import make_resident_id

    return make_resident_id(area, born, order)
