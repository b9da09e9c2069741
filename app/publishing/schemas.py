"""Bodies of the publishing area: assets, versions, publish results and diffs."""

import json

from marshmallow import Schema, ValidationError, fields, validate

from app.db.assets import ASSET_TYPES
from app.db.columns import MAX_ID
from app.db.users import ROLES

ASSET_KEY = validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,99}$", error="lower-case letters, digits, _ and -, at most 100")
MAX_THEME_BYTES = 16 * 1024


def _theme_size(theme: dict) -> None:
    if len(json.dumps(theme, separators=(",", ":")).encode("utf-8")) > MAX_THEME_BYTES:
        raise ValidationError(f"at most {MAX_THEME_BYTES // 1024} KB of JSON")


def _known_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")


class _Presentation(Schema):
    """How the asset shows in lists and the console, and which org roles see it there; never a serving rule."""

    theme = fields.Dict(
        keys=fields.String(),
        validate=_theme_size,
        metadata={"description": "Any JSON object (at most 16 KB) your clients use to draw the asset"},
    )
    icon = fields.String(validate=validate.Length(max=200), metadata={"description": "An icon name, e.g. chart-line"})
    sort_order = fields.Integer(
        strict=True,
        validate=validate.Range(min=-1_000_000, max=1_000_000),
        metadata={"description": "Lists are ordered by sort_order, then title"},
    )
    is_public = fields.Boolean(
        metadata={
            "description": "A flag for your clients' catalogues: it never lifts the "
            "key requirement, serving always needs an X-API-Key"
        }
    )
    roles = fields.List(
        fields.String(validate=_known_role),
        validate=validate.Length(max=len(ROLES)),
        metadata={
            "description": "Org roles (admin, designer, analyst, viewer) that see the asset in "
            "lists and the console; empty = every role; admins always see it"
        },
    )


class AssetCreateSchema(_Presentation):
    asset_type = fields.String(required=True, validate=validate.OneOf(ASSET_TYPES))
    asset_key = fields.String(required=True, validate=ASSET_KEY)
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    config = fields.Dict(required=True)


class AssetUpdateSchema(_Presentation):
    title = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=5000))
    config = fields.Dict()
    change_note = fields.String(load_default="", validate=validate.Length(max=2000))


class PublishSchema(Schema):
    change_note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))
    activate = fields.Boolean(
        load_default=True,
        metadata={"description": "false: make the version without routing traffic to it (PUT .../routing does)"},
    )


class RouteEntrySchema(Schema):
    version = fields.Integer(required=True)
    weight = fields.Integer(required=True, metadata={"description": "positive; the entries' weights sum to 100"})


class RoutingSchema(Schema):
    """Checked by app/publishing/routing.parse_routing (422 naming the field); this schema documents and dumps it."""

    strategy = fields.String(required=True, validate=validate.OneOf(("single", "random", "hash")))
    entries = fields.List(fields.Nested(RouteEntrySchema), required=True)
    shadow_version = fields.Integer(allow_none=True, load_default=None)


class RoutingChangeSchema(Schema):
    id = fields.Integer()
    changed_by = fields.String()
    changed_at = fields.DateTime()
    before = fields.Dict()
    after = fields.Dict()
    reason = fields.String()


class RoutingStateSchema(RoutingSchema):
    changes = fields.List(fields.Nested(RoutingChangeSchema), dump_only=True)


class VersionSchema(Schema):
    id = fields.Integer()
    version = fields.Integer()
    published_by = fields.String()
    change_note = fields.String()
    created_at = fields.DateTime()


class AssetSchema(Schema):
    id = fields.Integer(dump_only=True)
    asset_key = fields.String()
    asset_type = fields.String()
    title = fields.String()
    description = fields.String()
    status = fields.String(dump_only=True)
    config = fields.Dict()
    project_id = fields.Integer(allow_none=True, dump_only=True)
    published_version = fields.Integer(allow_none=True, dump_only=True)
    routing = fields.Dict(allow_none=True, dump_only=True)
    theme = fields.Dict()
    icon = fields.String()
    sort_order = fields.Integer()
    is_public = fields.Boolean()
    roles = fields.List(fields.String())
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)


class AssetDetailSchema(AssetSchema):
    versions = fields.List(fields.Nested(VersionSchema))


class AssetListSchema(Schema):
    items = fields.List(fields.Nested(AssetSchema))


class AssetListQuerySchema(Schema):
    asset_type = fields.String(validate=validate.OneOf(ASSET_TYPES))
    status = fields.String(validate=validate.OneOf(("draft", "published")))
    project_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))


class PublishResultSchema(Schema):
    ok = fields.Boolean()
    status = fields.String()
    version = fields.Integer()


class DeleteAssetQuerySchema(Schema):  # `?force=true`: delete a published asset (org admin)
    force = fields.Boolean(load_default=False)


class DeletedAssetSchema(Schema):
    id = fields.Integer()
    asset_key = fields.String()
    asset_type = fields.String()
    title = fields.String()
    project_id = fields.Integer(allow_none=True)
    last_version = fields.Integer(allow_none=True)
    deleted_by = fields.String()
    deleted_at = fields.DateTime()


class DeletedAssetListSchema(Schema):
    items = fields.List(fields.Nested(DeletedAssetSchema))


class DiffEntrySchema(Schema):
    path = fields.String()
    kind = fields.String()
    left = fields.Raw(allow_none=True)
    right = fields.Raw(allow_none=True)


class DiffSchema(Schema):
    left = fields.Dict()
    right = fields.Dict()
    diff = fields.List(fields.Nested(DiffEntrySchema))
