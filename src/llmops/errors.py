"""The exception tree and the OpenAI error envelope.

    LLMOpsError                      status  type
    ├── InvalidRequest               400     invalid_request_error (param names the field)
    │   └── PayloadTooLarge          413     invalid_request_error
    ├── AuthenticationFailed         401     authentication_error
    ├── PermissionDenied             403     permission_error
    ├── NotFound                     404     not_found_error (unknown config, provider, route)
    ├── RateLimited                  429     rate_limit_error
    └── UpstreamError                502     upstream_error
        └── UpstreamTimeout          504     timeout_error

Every error the gateway sends is rendered by `envelope()` as
``{"error": {"message", "type", "param", "code"}}`` — the shape the official OpenAI SDKs parse —
and none carries a stack trace or a secret.
"""

from __future__ import annotations

import orjson


class LLMOpsError(Exception):
    status = 500
    type = "server_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def body(self) -> bytes:
        return envelope(self.message, self.type, param=self.param, code=self.code)


class InvalidRequest(LLMOpsError):
    status = 400
    type = "invalid_request_error"


class PayloadTooLarge(InvalidRequest):
    status = 413
    code = "payload_too_large"


class AuthenticationFailed(LLMOpsError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(LLMOpsError):
    status = 403
    type = "permission_error"


class NotFound(LLMOpsError):
    status = 404
    type = "not_found_error"


class RateLimited(LLMOpsError):
    status = 429
    type = "rate_limit_error"


class UpstreamError(LLMOpsError):
    status = 502
    type = "upstream_error"
    code = "upstream_unreachable"


class UpstreamTimeout(UpstreamError):
    status = 504
    type = "timeout_error"
    code = "upstream_timeout"


def envelope(
    message: str, type_: str, *, param: str | None = None, code: str | None = None
) -> bytes:
    """Serialise an OpenAI error envelope."""
    return orjson.dumps(
        {"error": {"message": message, "type": type_, "param": param, "code": code}}
    )
