"""Bodies of the datasets area: upload form, registration, settings, metadata and previews."""

from __future__ import annotations

import json

from marshmallow import Schema, ValidationError, fields, validate

FRIENDLY_NAME = validate.Length(max=200)
DESCRIPTION = validate.Length(max=5000)


class JSONObject(fields.Field):
    """An object sent as JSON text (multipart forms carry only strings) or, in a JSON body, as an object."""

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except (ValueError, RecursionError):  # RecursionError: nested thousands deep
                raise ValidationError('expected a JSON object such as {"zip": "text"}') from None
        if not isinstance(value, dict):
            raise ValidationError("expected a JSON object")
        return value


class UploadFormSchema(Schema):
    """The multipart form fields sent next to `file`."""

    name = fields.String(load_default=None, validate=validate.Length(max=200))
    friendly_name = fields.String(load_default=None, validate=FRIENDLY_NAME)
    description = fields.String(load_default=None, validate=DESCRIPTION)
    replace = fields.Boolean(load_default=False)
    types = JSONObject(load_default=None, metadata={"description": "column -> forced logical type"})


class RegisterTableSchema(Schema):
    schema = fields.String(required=True, validate=validate.Length(min=1, max=63))
    table = fields.String(required=True, validate=validate.Length(min=1, max=63))
    name = fields.String(load_default=None, validate=validate.Length(min=1, max=200))
    friendly_name = fields.String(load_default=None, validate=FRIENDLY_NAME)
    description = fields.String(load_default=None, validate=DESCRIPTION)


class SettingsSchema(Schema):
    """GET answers every field; PUT writes only the fields sent, and `masking` only the columns sent (a column's
    entry replaces its override, null removes it, other columns keep theirs)."""

    friendly_name = fields.String(validate=FRIENDLY_NAME)
    description = fields.String(validate=DESCRIPTION)
    # Checked by the query engine's validate_masking_settings so errors name `masking.<column>.<key>`.
    masking = fields.Dict(
        keys=fields.String(),
        values=fields.Raw(allow_none=True),
        metadata={"description": "column -> {sensitivity, strategy}; PUT merges per column, null removes an override"},
    )


class ColumnSchema(Schema):
    name = fields.String()
    type = fields.String(metadata={"description": "integer | float | boolean | date | timestamp | text"})
    sensitivity = fields.String(metadata={"description": "effective: the override, else classified by name"})
    strategy = fields.String()


class DatasetIndexSchema(Schema):
    name = fields.String()
    columns = fields.List(fields.String())
    origin = fields.String(metadata={"description": "apiary (built for a published lookup or eq filter) | existing"})
    unique = fields.Boolean()
    status = fields.String(
        metadata={
            "description": "ready | building | failed | invalid (a failed concurrent build "
            "on PostgreSQL; dropped and rebuilt on the next publish)"
        }
    )
    error = fields.String(metadata={"description": "why the last build failed, else empty"})


class DatasetSchema(Schema):
    dataset_id = fields.Integer(dump_only=True)
    project_id = fields.Integer(dump_only=True)
    name = fields.String(dump_only=True)
    friendly_name = fields.String(dump_only=True)
    description = fields.String(dump_only=True)
    source = fields.String(dump_only=True, metadata={"description": "upload | registered"})
    row_count = fields.Integer(dump_only=True, allow_none=True)
    columns = fields.List(fields.Nested(ColumnSchema), dump_only=True)
    masking = fields.Dict(dump_only=True, metadata={"description": "the settings overrides, column -> masking"})
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    indexes = fields.List(
        fields.Nested(DatasetIndexSchema),
        dump_only=True,
        metadata={"description": "GET /api/datasets/{name} only: the warehouse table's indexes"},
    )


class DatasetListSchema(Schema):
    items = fields.List(fields.Nested(DatasetSchema))


class PreviewSchema(Schema):
    name = fields.String()
    columns = fields.List(fields.Nested(ColumnSchema))
    rows = fields.List(fields.Dict())
    count = fields.Integer()
    limit = fields.Integer()
    masked = fields.Boolean(metadata={"description": "false only for organization admins"})
