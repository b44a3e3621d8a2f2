"""A service that is NOT under services/: it proves that a newcomer joins the mesh
by deploying itself, without anything under invoke_centre/ naming it."""

import eventlet

from invoke_centre.kit import Caller, Conflict, Member, NotFound, ValidationError, serves

PRICE_SCHEMA = {
    "type": "object",
    "required": ["sum_insured"],
    "properties": {
        "sum_insured": {"type": "integer", "minimum": 1},
        "rate_permille": {"type": "integer", "minimum": 0, "maximum": 1000},
    },
    "additionalProperties": False,
}


class QuotesService:
    name = "quotes"
    member = Member(version="1.0.0")
    caller = Caller()
    accepted: dict = {}

    @serves("quote.price", permission="quote:read", input_schema=PRICE_SCHEMA,
            summary="Price a quote")
    def price(self, params):
        rate = params.get("rate_permille", 3)
        if params["sum_insured"] > 10_000_000:
            raise ValidationError("too large", {"sum_insured": ["at most 10000000"]})
        # integer fen, rounded half up
        return {"premium_fen": (params["sum_insured"] * 100 * rate + 500) // 1000,
                "instance": self.member.instance}

    @serves("quote.accept", permission="quote:write", mutating=True,
            input_schema={"type": "object", "required": ["quote_no"],
                          "properties": {"quote_no": {"type": "string"}}})
    def accept(self, params):
        """Accept a quote (counts how often it really ran)."""
        n = QuotesService.accepted.get(params["quote_no"], 0) + 1
        QuotesService.accepted[params["quote_no"]] = n
        if params["quote_no"] == "taken":
            raise Conflict("already accepted", {"quote_no": ["taken"]})
        return {"quote_no": params["quote_no"], "runs": n}

    @serves("quote.whoami", permission="quote:read")
    def whoami(self, params):
        c = self.caller
        return {"request_id": c.request_id, "user_id": c.user_id, "roles": list(c.roles),
                "branch": c.branch, "deadline_left_s": c.remaining_s(),
                "named_request": c.named_request, "idempotency_key": c.idempotency_key}

    @serves("quote.slow", permission="quote:read", timeout_ms=500)
    def slow(self, params):
        eventlet.sleep(float(params.get("seconds", 1)))
        return {"slept": params.get("seconds", 1)}

    @serves("quote.hold", permission="quote:write", mutating=True, timeout_ms=5000,
            input_schema={"type": "object", "properties": {"seconds": {"type": "number"}}})
    def hold(self, params):
        """A mutating request that takes its time (for idempotency while running)."""
        eventlet.sleep(float(params.get("seconds", 1)))
        return {"held": params.get("seconds", 1)}

    @serves("quote.find", permission="quote:read")
    def find(self, params):
        raise NotFound(f"no quote {params.get('quote_no')}")

    @serves("quote.crash", permission="quote:read")
    def crash(self, params):
        raise RuntimeError("secret internal detail")
