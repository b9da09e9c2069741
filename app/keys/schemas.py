"""Bodies of the keys area: minting, listing and revoking data-API keys."""

from marshmallow import Schema, fields, validate

from app.query.masking import SENSITIVITY_LEVELS


class KeyCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    rate_limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1_000_000))
    expires_days = fields.Integer(load_default=90, allow_none=True, validate=validate.Range(min=0, max=3650))
    masking_level = fields.String(load_default="masked", validate=validate.OneOf(("masked", "unmasked")))
    sensitivity_max = fields.String(load_default="medium", validate=validate.OneOf(SENSITIVITY_LEVELS))
    allowed_columns = fields.List(fields.String(validate=validate.Length(min=1, max=63)), load_default=list)
    # null = every endpoint; [] is refused (422): it must never read as "every endpoint" (see check_key_fields).
    allowed_endpoints = fields.List(
        fields.String(validate=validate.Length(min=1, max=64)),
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1, error="must name at least one endpoint; send null for every endpoint"),
    )
    row_scope = fields.Dict(keys=fields.String(), values=fields.Raw(), load_default=None, allow_none=True)
    can_force_version = fields.Boolean(
        load_default=False,
        metadata={"description": "May pin a call to a published version with the X-Service-Version header"},
    )


class KeyUpdateSchema(KeyCreateSchema):
    """PATCH: any mint field, validated by the mint schema itself; load it with `partial=True` so only the fields
    sent are changed (no defaults filled in)."""


class KeyRotateSchema(Schema):
    grace_seconds = fields.Integer(
        load_default=0,
        strict=True,
        validate=validate.Range(min=0, max=86_400),
        metadata={"description": "Seconds the old secret keeps working (0..86400)"},
    )


class KeySchema(Schema):
    id = fields.Integer()
    asset_id = fields.Integer()
    name = fields.String()
    prefix = fields.String()
    rate_limit = fields.Integer()
    expires_at = fields.DateTime(allow_none=True)
    masking_level = fields.String()
    sensitivity_max = fields.String()
    allowed_columns = fields.List(fields.String())
    allowed_endpoints = fields.List(fields.String(), allow_none=True)
    row_scope = fields.Dict(allow_none=True)
    can_force_version = fields.Boolean()
    is_active = fields.Boolean()
    revoked_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)
    rotated_at = fields.DateTime(allow_none=True)
    grace_expires_at = fields.DateTime(
        attribute="previous_key_expires_at",
        allow_none=True,
        metadata={"description": "Until when the secret replaced by a rotation works"},
    )
    created_at = fields.DateTime()


class KeyCreatedSchema(KeySchema):
    key = fields.String()


class KeyListSchema(Schema):
    items = fields.List(fields.Nested(KeySchema))
