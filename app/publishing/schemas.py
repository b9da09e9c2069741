"""Bodies of the publishing area: assets, versions, publish results and diffs."""

from marshmallow import Schema, fields, validate

from app.db.assets import ASSET_TYPES
from app.db.columns import MAX_ID

ASSET_KEY = validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,99}$", error="lower-case letters, digits, _ and -, at most 100")


class AssetCreateSchema(Schema):
    asset_type = fields.String(required=True, validate=validate.OneOf(ASSET_TYPES))
    asset_key = fields.String(required=True, validate=ASSET_KEY)
    title = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    config = fields.Dict(required=True)


class AssetUpdateSchema(Schema):
    title = fields.String(validate=validate.Length(min=1, max=200))
    description = fields.String(validate=validate.Length(max=5000))
    config = fields.Dict()
    change_note = fields.String(load_default="", validate=validate.Length(max=2000))


class PublishSchema(Schema):
    change_note = fields.String(load_default=None, allow_none=True, validate=validate.Length(max=2000))


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


class DiffEntrySchema(Schema):
    path = fields.String()
    kind = fields.String()
    left = fields.Raw(allow_none=True)
    right = fields.Raw(allow_none=True)


class DiffSchema(Schema):
    left = fields.Dict()
    right = fields.Dict()
    diff = fields.List(fields.Nested(DiffEntrySchema))
