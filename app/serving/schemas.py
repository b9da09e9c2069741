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


class LogPageSchema(Schema):
    items = fields.List(fields.Nested(LogEntrySchema))
    total = fields.Integer()
    limit = fields.Integer()
    offset = fields.Integer()


class StatsQuerySchema(Schema):
    window = fields.String(load_default="day", validate=validate.OneOf(("hour", "day", "week")))
    endpoint_id = fields.String(validate=validate.Length(max=64))


class StatsBucketSchema(Schema):
    start = fields.String()
    calls = fields.Integer()
    errors = fields.Integer()
    error_rate = fields.Float(allow_none=True)
    p50_ms = fields.Float(allow_none=True)
    p99_ms = fields.Float(allow_none=True)


class EndpointStatsSchema(StatsBucketSchema):
    endpoint_id = fields.String(allow_none=True)
    buckets = fields.List(fields.Nested(StatsBucketSchema))

    class Meta:
        exclude = ("start",)


class ServiceStatsSchema(Schema):
    window = fields.String()
    since = fields.String()
    until = fields.String()
    bucket_seconds = fields.Integer()
    endpoints = fields.List(fields.Nested(EndpointStatsSchema))


class HistogramBinSchema(Schema):
    le_ms = fields.Float(allow_none=True)
    count = fields.Integer()


class LatencyHistogramSchema(Schema):
    total = fields.Integer()
    bins = fields.List(fields.Nested(HistogramBinSchema))
