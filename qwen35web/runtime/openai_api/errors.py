"""OpenAI's error object: `{"error": {"message", "type", "param", "code"}}` with an HTTP status."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A request this API refuses: `status` is the HTTP status, the rest OpenAI's error fields."""

    def __init__(
        self,
        message: str,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        type: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.param = param
        self.code = code
        self.type = type

    def to_json(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def not_found(message: str, code: str = "not_found") -> ApiError:
    return ApiError(message, status=404, code=code, type="not_found_error")


def server_error(message: str) -> ApiError:
    return ApiError(message, status=500, code="internal_error", type="server_error")
