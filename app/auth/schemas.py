"""Bodies of the auth area: login, sign-up, users and personal access tokens."""

from marshmallow import Schema, ValidationError, fields, validate

from app.auth.passwords import COMMON_PASSWORD, is_common_password
from app.db.users import ROLES

# No `@`: logging in by e-mail must never land on an account whose username is someone's e-mail address.
USERNAME = validate.Regexp(r"^[A-Za-z0-9_.-]{3,80}$", error="3-80 letters, digits or _ . - (no @)")


def _not_common(password: str) -> None:
    if is_common_password(password):
        raise ValidationError(COMMON_PASSWORD)


PASSWORD = [validate.Length(min=8, max=256, error="must be 8 to 256 characters"), _not_common]


class LoginSchema(Schema):
    username = fields.String(required=True, validate=validate.Length(min=1, max=254))
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=256))


class LoginResultSchema(Schema):
    access_token = fields.String()
    token_type = fields.String()
    must_reset_password = fields.Boolean()
    expires_in = fields.Integer()


class MeSchema(Schema):
    user_id = fields.Integer(attribute="id")
    username = fields.String()
    email = fields.String()
    org_id = fields.Integer()
    role = fields.String()


class RegisterSchema(Schema):
    org_name = fields.String(required=True, validate=validate.Length(min=2, max=200))
    username = fields.String(required=True, validate=USERNAME)
    email = fields.Email(required=True)
    password = fields.String(required=True, load_only=True, validate=PASSWORD)


class RegisterResultSchema(Schema):
    user_id = fields.Integer()
    org_id = fields.Integer()


class UserCreateSchema(Schema):
    username = fields.String(required=True, validate=USERNAME)
    email = fields.Email(required=True)
    password = fields.String(required=True, load_only=True, validate=PASSWORD)
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class UserSchema(Schema):
    user_id = fields.Integer(attribute="id", dump_only=True)
    username = fields.String()
    email = fields.String()
    role = fields.String()
    org_id = fields.Integer(dump_only=True)
    is_active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class UserListSchema(Schema):
    items = fields.List(fields.Nested(UserSchema))


class TokenCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    expires_days = fields.Integer(load_default=90, allow_none=True, validate=validate.Range(min=0, max=3650))


class TokenSchema(Schema):
    id = fields.Integer(dump_only=True)
    name = fields.String()
    prefix = fields.String(dump_only=True)
    parent_id = fields.Integer(
        dump_only=True, allow_none=True, metadata={"description": "the token that minted this one (null: a login)"}
    )
    expires_at = fields.DateTime(dump_only=True, allow_none=True)
    last_used_at = fields.DateTime(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class TokenCreatedSchema(TokenSchema):
    token = fields.String(dump_only=True)


class TokenListSchema(Schema):
    items = fields.List(fields.Nested(TokenSchema))


class AuthFailureQuerySchema(Schema):
    reason = fields.String(
        validate=validate.OneOf(("missing_key", "invalid_key", "key_revoked", "key_expired", "wrong_asset"))
    )
    since = fields.DateTime()
    until = fields.DateTime()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=2**31 - 1))


class AuthFailureSchema(Schema):
    id = fields.Integer()
    created_at = fields.DateTime()  # the first attempt of its minute
    reason = fields.String()
    key_prefix = fields.String(allow_none=True)  # the key's public prefix, never its secret
    client_ip = fields.String(allow_none=True)
    route = fields.String()
    asset_id = fields.Integer(allow_none=True)
    count = fields.Integer()  # attempts of the same address, prefix, route and reason in that minute


class AuthFailurePageSchema(Schema):
    items = fields.List(fields.Nested(AuthFailureSchema))
    total = fields.Integer()
    attempts = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()
