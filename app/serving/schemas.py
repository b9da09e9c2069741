"""Bodies of the serving area: audit-log queries and entries."""

from marshmallow import Schema, fields, validate

from app.db.columns import MAX_ID


class LogQuerySchema(Schema):
    endpoint_id = fields.String(validate=validate.Length(max=64))
    key_id = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    status = fields.Integer(validate=validate.Range(min=100, max=599))
    errors_only = fields.Boolean(load_default=False)
    version = fields.Integer(validate=validate.Range(min=1, max=MAX_ID))
    shadow = fields.Boolean()
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
    shadow = fields.Boolean()
    call_id = fields.String(allow_none=True)
    summary = fields.Dict(allow_none=True)

    request_id = fields.String(allow_none=True)
    client_ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    timing = fields.Dict(allow_none=True)  # {auth, ratelimit, cache, query, queue, score, function, cpu, total} in ms
    request_payload = fields.String(allow_none=True)  # log: "payload" endpoints: JSON text, clipped
    response_payload = fields.String(allow_none=True)


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


class CompareQuerySchema(Schema):
    a = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_ID))
    b = fields.Integer(required=True, validate=validate.Range(min=1, max=MAX_ID))
    since = fields.DateTime()
    until = fields.DateTime()
    endpoint_id = fields.String(validate=validate.Length(max=64))


class VersionStatsSchema(Schema):
    version = fields.Integer()
    calls = fields.Integer()
    errors = fields.Integer()
    error_rate = fields.Float(allow_none=True)
    p50_ms = fields.Float(allow_none=True)
    p99_ms = fields.Float(allow_none=True)
    shadow_runs = fields.Integer()
    shadow_errors = fields.Integer()
    predictions = fields.Dict(
        allow_none=True,
        metadata={
            "description": "classification: {kind, count, classes: [{label, count, share}]}; "
            "regression: {kind, count, mean, min, p50, p90, max}"
        },
    )


class ShadowAgreementSchema(Schema):
    pairs = fields.Integer()
    predictions_compared = fields.Integer()
    agreement_rate = fields.Float(allow_none=True, metadata={"description": "share of the same class"})
    mean_abs_diff = fields.Float(allow_none=True, metadata={"description": "regression: mean |a - b|"})
    function_pairs = fields.Integer()
    function_agreement_rate = fields.Float(allow_none=True, metadata={"description": "same result"})


class CompareSchema(Schema):
    asset_id = fields.Integer()
    a = fields.Integer()
    b = fields.Integer()
    since = fields.DateTime(allow_none=True)
    until = fields.DateTime(allow_none=True)
    endpoint_id = fields.String(allow_none=True)
    versions = fields.List(fields.Nested(VersionStatsSchema))
    shadow = fields.Nested(ShadowAgreementSchema)
    truncated = fields.Boolean()


class LogExportQuerySchema(Schema):
    format = fields.String(load_default="jsonl", validate=validate.OneOf(("jsonl", "csv")))
    endpoint_id = fields.String(validate=validate.Length(max=64))
    since = fields.DateTime()
    until = fields.DateTime()
