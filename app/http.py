"""Request parsing shared by every blueprint."""

from flask import request

from app.errors import APIError


def json_body() -> dict:
    """The request's JSON object; 400 when the body is missing, malformed or not an object."""
    if not request.is_json:
        raise APIError(415, "unsupported_media_type", "send a JSON body with Content-Type: application/json")
    data = request.get_json(silent=True)
    if data is None:
        raise APIError(400, "bad_request", "request body is not valid JSON")
    if not isinstance(data, dict):
        raise APIError(400, "bad_request", "request body must be a JSON object")
    return data
