"""Bodies of the serving area: audit-log queries and entries."""

from marshmallow import Schema, fields, validate

from app.db.columns import MAX_ID


class LogQuerySchema(Schema):
    endpoint_id = fields.String(validate=validate.Length(max=64))
    key_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    status = fields.Integer(validate=validate.Range(min=100, max=599))
    errors_only = fields.Boolean(load_default=False)
    since = fields.DateTime()
    until = fields.DateTime()
    limit = fields.Integer(load_default=100, validate=validate.Range(min=1, max=1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_ID))


class LogEntrySchema(Schema):
    id = fields.Integer()
    created_at = fields.DateTime()
    endpoint_id = fields.String(allow_none=True)
    key_id = fields.Integer(allow_none=True)
    method = fields.String()
    status = fields.Integer()
    latency_ms = fields.Float()
    model_id = fields.Integer(allow_none=True)
    error_code = fields.String(allow_none=True)
    context = fields.Dict(allow_none=True)
    version = fields.Integer(allow_none=True)
    request_id = fields.String(allow_none=True)
    client_ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    timing = fields.Dict(allow_none=True)  # {auth, ratelimit, cache, query, queue, score, function, total} in ms
    request_payload = fields.String(allow_none=True)  # log: "payload" endpoints: JSON text, clipped
    response_payload = fields.String(allow_none=True)


class LogPageSchema(Schema):
    items = fields.List(fields.Nested(LogEntrySchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


class LogExportQuerySchema(Schema):
    format = fields.String(load_default="jsonl", validate=validate.OneOf(("jsonl", "csv")))
    endpoint_id = fields.String(validate=validate.Length(max=64))
    since = fields.DateTime()
    until = fields.DateTime()
