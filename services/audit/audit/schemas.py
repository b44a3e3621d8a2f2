"""The wire shapes of the audit service's named requests.

Each request has a JSON Schema in its manifest (the gateway checks it first and answers 400
with field messages) and a marshmallow schema here that the service loads with again — a
service does not trust that the centre checked — and that turns values into what the queries
need (instants into UTC text, a cursor into a seq).
"""

from __future__ import annotations

from marshmallow import (
    RAISE,
    Schema,
    ValidationError,
    fields,
    validate,
    validates_schema,
)

from audit import domain
from invoke_centre import wire

_KEY = {"type": "string", "minLength": 1, "maxLength": domain.MAX_KEY_TEXT}
_TYPES = {"oneOf": [{"enum": list(wire.AUDIT_TYPES)},
                    {"type": "array", "items": {"enum": list(wire.AUDIT_TYPES)},
                     "minItems": 1, "maxItems": len(wire.AUDIT_TYPES)}]}
_FILTERS = {
    "user_id": _KEY,
    "type": _TYPES,
    "from": {"type": "string", "maxLength": 40,
             "description": "ISO 8601 instant with a zone; inclusive"},
    "to": {"type": "string", "maxLength": 40,
           "description": "ISO 8601 instant with a zone; exclusive"},
    "request_id": _KEY,
    "named_request": _KEY,
    "outcome": {"enum": list(wire.AUDIT_OUTCOMES)},
    "source": _KEY,
    "object": {"type": "string", "minLength": 1, "maxLength": domain.MAX_TEXT},
    "cursor": {"type": "string", "pattern": r"^[0-9]{1,19}$",
               "description": "next_cursor of the previous page"},
    "order": {"enum": ["desc", "asc"]},
}
SEARCH_INPUT = {"type": "object", "additionalProperties": False,
                "properties": {**_FILTERS,
                               "limit": {"type": "integer", "minimum": 1, "maximum": 500}}}
EXPORT_INPUT = {"type": "object", "additionalProperties": False,
                "properties": {**_FILTERS,
                               "limit": {"type": "integer", "minimum": 1,
                                         "maximum": 20000}}}
GET_INPUT = {"type": "object", "additionalProperties": False,
             "properties": {"seq": {"type": "integer", "minimum": 1},
                            "event_id": {"type": "string", "minLength": 1,
                                         "maxLength": 128}}}
VERIFY_INPUT = {"type": "object", "additionalProperties": False,
                "properties": {"since_seq": {"type": "integer", "minimum": 1}}}
EMPTY_INPUT = {"type": "object", "additionalProperties": False, "properties": {}}
_LIST = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 200},
         "maxItems": 200}
POLICY_SET_INPUT = {
    "type": "object", "additionalProperties": False, "required": ["rules"],
    "properties": {
        "rules": {"type": "array", "maxItems": 100, "items": {
            "type": "object", "additionalProperties": False,
            "properties": {**{k: _LIST for k in domain.RULE_KEYS},
                           "types": {"type": "array", "maxItems": 20,
                                     "items": {"enum": list(wire.AUDIT_TYPES)}}}}},
        "note": {"type": "string", "maxLength": 500},
        "expected_version": {"type": "integer", "minimum": 0},
    },
}


class _Types(fields.Field):
    """One type or a list of them."""

    def _deserialize(self, value, attr, data, **kwargs):
        items = value if isinstance(value, list) else [value]
        if not items or not all(isinstance(t, str) for t in items):
            raise ValidationError("must be a type or a list of types")
        bad = [t for t in items if t not in wire.AUDIT_TYPES]
        if bad:
            raise ValidationError(f"unknown type {', '.join(bad)}; one of "
                                  f"{', '.join(wire.AUDIT_TYPES)}")
        return tuple(dict.fromkeys(items))


class _Instant(fields.Field):
    def _deserialize(self, value, attr, data, **kwargs):
        try:
            return domain.parse_instant(value)
        except ValueError as exc:
            raise ValidationError(str(exc))


def _Key() -> fields.Str:  # noqa: N802 - reads like the field classes it stands beside
    return fields.Str(validate=validate.Length(1, domain.MAX_KEY_TEXT))


class _Strict(Schema):
    class Meta:
        unknown = RAISE

    def handle_error(self, error, data, **kwargs):
        # "Unknown field." says nothing of what is allowed
        messages = error.messages if isinstance(error.messages, dict) else {}
        for name, msgs in messages.items():
            if msgs == ["Unknown field."]:
                allowed = ", ".join(sorted(self.fields_by_key()))
                messages[name] = [f"unknown parameter; allowed: {allowed}"]
        raise error

    def fields_by_key(self):
        return [f.data_key or n for n, f in self.fields.items()]


class SearchSchema(_Strict):
    user_id = _Key()
    types = _Types(data_key="type")
    since = _Instant(data_key="from")
    until = _Instant(data_key="to")
    request_id = _Key()
    named_request = _Key()
    outcome = fields.Str(validate=validate.OneOf(wire.AUDIT_OUTCOMES))
    source = _Key()
    object_ = fields.Str(data_key="object", validate=validate.Length(1, domain.MAX_TEXT))
    cursor = fields.Str(validate=validate.Regexp(r"^[0-9]{1,19}$",
                                                 error="not a cursor: pass next_cursor of "
                                                       "the previous page"))
    order = fields.Str(load_default="desc", validate=validate.OneOf(["desc", "asc"]))
    limit = fields.Int(load_default=50, strict=True,
                       validate=validate.Range(1, 500, error="must be 1 to 500"))

    @validates_schema
    def _range(self, data, **kwargs):
        if data.get("since") and data.get("until") and data["since"] >= data["until"]:
            raise ValidationError("must be later than from", "to")


class ExportSchema(SearchSchema):
    order = fields.Str(load_default="asc", validate=validate.OneOf(["desc", "asc"]))
    limit = fields.Int(load_default=5000, strict=True,
                       validate=validate.Range(1, 20000, error="must be 1 to 20000"))


class GetSchema(_Strict):
    seq = fields.Int(strict=True, validate=validate.Range(min=1))
    event_id = fields.Str(validate=validate.Length(1, 128))

    @validates_schema
    def _one(self, data, **kwargs):
        if ("seq" in data) == ("event_id" in data):
            raise ValidationError("give seq or event_id (one of them)", "seq")


class VerifySchema(_Strict):
    since_seq = fields.Int(strict=True, validate=validate.Range(min=1))


class EmptySchema(_Strict):
    pass


class PolicySetSchema(_Strict):
    rules = fields.Raw(required=True)
    note = fields.Str(load_default="", validate=validate.Length(max=500))
    expected_version = fields.Int(strict=True, validate=validate.Range(min=0))


def load(schema: Schema, params) -> dict:
    """``schema.load`` with the kit's ValidationError (field -> messages) on failure."""
    from invoke_centre.kit import ValidationError as Invalid

    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise Invalid("the parameters must be a JSON object", {"_": ["must be an object"]})
    try:
        return schema.load(params)
    except ValidationError as err:
        messages = err.messages if isinstance(err.messages, dict) else {"_": err.messages}
        flat = {k: (v if isinstance(v, list) else [str(v)]) for k, v in messages.items()}
        raise Invalid("the parameters do not fit the request", flat)

