"""Bodies of the projects area."""

from marshmallow import Schema, fields, validate

SLUG = validate.Regexp(r"^[a-z0-9][a-z0-9-]{0,62}$", error="lower-case letters, digits and dashes, at most 63")
COLOR = validate.Regexp(r"^#[0-9A-Fa-f]{6}$", error="a colour as #RRGGBB")


class ProjectCreateSchema(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    slug = fields.String(required=True, validate=SLUG)
    description = fields.String(load_default="", validate=validate.Length(max=5000))
    icon = fields.String(
        load_default="",
        validate=validate.Length(max=64),
        metadata={"description": "An icon name, e.g. folder (at most 64 characters)"},
    )
    color = fields.String(
        load_default=None, allow_none=True, validate=COLOR, metadata={"description": "#RRGGBB, e.g. #B45309"}
    )


class ProjectSchema(Schema):
    project_id = fields.Integer(attribute="id", dump_only=True)
    slug = fields.String()
    name = fields.String()
    description = fields.String()
    icon = fields.String()
    color = fields.String(allow_none=True)
    org_id = fields.Integer(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class ProjectListSchema(Schema):
    items = fields.List(fields.Nested(ProjectSchema))
