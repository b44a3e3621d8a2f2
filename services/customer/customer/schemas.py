"""Wire shapes of the customer service: what its named requests take, what they answer, and the
events it sends. The manifest's JSON Schemas are derived from these, so each shape is written
once."""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate
from marshmallow import ValidationError as ShapeError

from customer import dictionaries as dicts
from customer.domain import GROUPINGS, NAME_MODES, SORTABLE, Customer
from invoke_centre.kit import mask_id_number, mask_mobile

_ID_TYPES = validate.OneOf(list(dicts.ID_TYPES))
_BRANCH = validate.Regexp(r"^\d{2,16}$", error="must be a branch code (2-16 digits)")
_REGION = validate.Regexp(r"^\d{2,6}$", error="must be a region code prefix (2-6 digits)")


def _opt_str(n: int, **kw) -> fields.Str:
    return fields.Str(allow_none=True, validate=validate.Length(max=n), **kw)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class _CustomerFields(_Strict):
    name = fields.Str(validate=validate.Length(min=1, max=60))
    gender = fields.Str(allow_none=True, validate=validate.OneOf(list(dicts.GENDERS)))
    birth_date = fields.Date(allow_none=True)
    id_type = fields.Str(validate=_ID_TYPES)
    id_number = fields.Str(validate=validate.Length(min=4, max=32))
    mobile = _opt_str(20)
    province = _opt_str(40)
    prefecture = _opt_str(60)
    county = _opt_str(60)
    street = _opt_str(200)
    region_code = fields.Str(allow_none=True, validate=validate.Regexp(r"^\d{6}$"))
    occupation_code = fields.Str(allow_none=True, validate=validate.OneOf(list(dicts.OCCUPATIONS)))
    employer = _opt_str(120)
    email = _opt_str(120)
    branch = fields.Str(validate=_BRANCH)
    manager_id = _opt_str(64)
    latitude = fields.Float(allow_none=True, validate=validate.Range(-90, 90))
    longitude = fields.Float(allow_none=True, validate=validate.Range(-180, 180))


class CreateCustomerSchema(_CustomerFields):
    name = fields.Str(required=True, validate=validate.Length(min=1, max=60))
    id_number = fields.Str(required=True, validate=validate.Length(min=4, max=32))


class UpdateCustomerSchema(_CustomerFields):
    id = fields.Int(required=True, validate=validate.Range(min=1))
    version = fields.Int(required=True, validate=validate.Range(min=1))


class _Filters(_Strict):
    branch = fields.Str(validate=_BRANCH)
    manager_id = fields.Str(validate=validate.Length(max=64))
    age_min = fields.Int(validate=validate.Range(0, 150))
    age_max = fields.Int(validate=validate.Range(0, 150))
    occupation_code = fields.Str(validate=validate.Length(max=10))
    region = fields.Str(validate=_REGION)


class _Finders(_Filters):
    q = fields.Str(validate=validate.Length(min=1, max=60))
    id_number = fields.Str(validate=validate.Length(min=4, max=32))
    mobile = fields.Str(validate=validate.Length(min=5, max=20))
    name = fields.Str(validate=validate.Length(min=1, max=60))
    name_match = fields.Str(validate=validate.OneOf(NAME_MODES))
    sort = fields.Str(validate=validate.OneOf(SORTABLE))
    order = fields.Str(validate=validate.OneOf(["asc", "desc"]))


class SearchSchema(_Finders):
    limit = fields.Int(validate=validate.Range(1, 100))
    cursor = fields.Str(validate=validate.Length(max=400))


class GetCustomerSchema(_Strict):
    id = fields.Int(required=True, validate=validate.Range(min=1))


class RelateSchema(_Strict):
    customer_id = fields.Int(required=True, validate=validate.Range(min=1))
    related_id = fields.Int(required=True, validate=validate.Range(min=1))
    kind = fields.Str(required=True, validate=validate.OneOf(list(dicts.RELATIONSHIPS)))


class UnrelateSchema(RelateSchema):
    kind = fields.Str(validate=validate.OneOf(list(dicts.RELATIONSHIPS)))


class LocateSchema(_Strict):
    id = fields.Int(required=True, validate=validate.Range(min=1))
    latitude = fields.Float(required=True, validate=validate.Range(-90, 90))
    longitude = fields.Float(required=True, validate=validate.Range(-180, 180))
    source = fields.Str(validate=validate.OneOf(list(dicts.LOCATION_SOURCES)))
    accuracy_m = fields.Float(validate=validate.Range(0, 100000))
    version = fields.Int(validate=validate.Range(min=1))


class AnalysisSchema(_Filters):
    by = fields.Str(validate=validate.OneOf(GROUPINGS))


class ImportSchema(_Strict):
    format = fields.Str(required=True, validate=validate.OneOf(["csv", "xlsx"]))
    content_base64 = fields.Str(required=True, validate=validate.Length(min=1))
    mode = fields.Str(validate=validate.OneOf(["all_or_nothing", "valid_rows"]))


class ExportSchema(_Finders):
    format = fields.Str(required=True, validate=validate.OneOf(["csv", "xlsx"]))
    limit = fields.Int(validate=validate.Range(1, 20000))


class EmptySchema(_Strict):
    pass


_INSTANCES: dict[type, Schema] = {}


def load(schema: Schema | type[Schema], params: Any) -> dict[str, Any]:
    """Load ``params`` or raise the marshmallow error (the service maps it to a 400). Schema
    instances are made once: loading does not change them."""
    if isinstance(schema, type):
        schema = _INSTANCES.get(schema) or _INSTANCES.setdefault(schema, schema())
    return schema.load(params if params is not None else {})


# --- JSON Schema for the manifest ---------------------------------------------------------------

def json_schema(schema: Schema) -> dict[str, Any]:
    """The JSON Schema the centre checks a request against, from the marshmallow schema."""
    props: dict[str, Any] = {}
    required = []
    for name, f in schema.fields.items():
        p: dict[str, Any] = {"type": {fields.Int: "integer", fields.Float: "number",
                                      fields.Bool: "boolean"}.get(type(f), "string")}
        if isinstance(f, fields.Date):
            p["format"] = "date"
        validators = f.validators if hasattr(f, "validators") else []
        for v in validators:
            if isinstance(v, validate.OneOf):
                p["enum"] = list(v.choices)
            elif isinstance(v, validate.Length):
                if v.min is not None:
                    p["minLength"] = v.min
                if v.max is not None:
                    p["maxLength"] = v.max
            elif isinstance(v, validate.Range):
                if v.min is not None:
                    p["minimum"] = v.min
                if v.max is not None:
                    p["maximum"] = v.max
            elif isinstance(v, validate.Regexp):
                p["pattern"] = v.regex.pattern
        if f.allow_none:
            p["type"] = [p["type"], "null"]
            if "enum" in p:
                p["enum"] = p["enum"] + [None]
        props[name] = p
        if f.required:
            required.append(name)
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


# --- answers --------------------------------------------------------------------------------

PII_FIELDS = ("id_number", "mobile")


def _iso(v):
    return v.isoformat() if v is not None else None


def present(c: Customer, *, unmasked: bool, today=None) -> dict[str, Any]:
    """A customer as answered: ID and mobile numbers masked unless ``unmasked``."""
    occ = dicts.OCCUPATIONS.get(c.occupation_code or "")
    return {
        "id": c.id,
        "name": c.name,
        "name_pinyin": c.name_pinyin,
        "name_initials": c.name_initials,
        "gender": c.gender,
        "birth_date": _iso(c.birth_date),
        "age": c.age(today),
        "id_type": c.id_type,
        "id_number": c.id_number if unmasked else mask_id_number(c.id_number),
        "mobile": c.mobile if unmasked or not c.mobile else mask_mobile(c.mobile),
        "pii_masked": not unmasked,
        "address": {"province": c.province, "prefecture": c.prefecture, "county": c.county,
                    "street": c.street, "region_code": c.region_code},
        "occupation": {"code": c.occupation_code, "name": occ.name if occ else None,
                       "risk_class": occ.risk_class if occ else None},
        "employer": c.employer,
        "email": c.email,
        "branch": c.branch,
        "manager_id": c.manager_id,
        "location": None if c.latitude is None else {
            "latitude": c.latitude, "longitude": c.longitude, "source": c.location_source,
            "located_at": _iso(c.located_at)},
        "created_at": _iso(c.created_at),
        "updated_at": _iso(c.updated_at),
        "version": c.version,
    }


def flat(c: Customer, *, unmasked: bool) -> dict[str, Any]:
    """One export row: the import columns (so an export imports again) plus id and version."""
    return {
        "id": c.id, "name": c.name, "gender": c.gender, "birth_date": _iso(c.birth_date),
        "id_type": c.id_type,
        "id_number": c.id_number if unmasked else mask_id_number(c.id_number),
        "mobile": (c.mobile if unmasked or not c.mobile else mask_mobile(c.mobile)) or "",
        "province": c.province, "prefecture": c.prefecture, "county": c.county,
        "street": c.street, "region_code": c.region_code, "occupation_code": c.occupation_code,
        "employer": c.employer, "email": c.email, "branch": c.branch,
        "manager_id": c.manager_id, "latitude": c.latitude, "longitude": c.longitude,
        "version": c.version,
    }


class CustomerEventSchema(Schema):
    """``customer_created`` / ``customer_changed`` / ``customer_moved``: no ID or mobile
    numbers on the bus; a service that needs them asks ``customer.get`` with its own rights."""

    class Meta:
        unknown = EXCLUDE

    id = fields.Int()
    version = fields.Int()
    name = fields.Str()
    gender = fields.Str()
    birth_date = fields.Date()
    branch = fields.Str()
    manager_id = fields.Str(allow_none=True)
    region_code = fields.Str(allow_none=True)
    province = fields.Str(allow_none=True)
    prefecture = fields.Str(allow_none=True)
    county = fields.Str(allow_none=True)
    occupation_code = fields.Str(allow_none=True)
    latitude = fields.Float(allow_none=True)
    longitude = fields.Float(allow_none=True)
    location_source = fields.Str(allow_none=True)
    located_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime()


def event(c: Customer, **extra: Any) -> dict[str, Any]:
    return {**CustomerEventSchema().dump(c), **extra}


__all__ = ["ShapeError"]
