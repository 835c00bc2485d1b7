"""HTTP edge: one table from the error taxonomy to status codes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from loopline_core import errors

STATUS: dict[type[errors.LooplineError], int] = {
    errors.InvalidArgument: 400,
    errors.MalformedEvent: 400,
    errors.Unauthenticated: 401,
    errors.PermissionDenied: 403,
    errors.NotFound: 404,
    errors.AlreadyExists: 409,
    errors.FailedPrecondition: 409,
    errors.Unavailable: 503,
}


def status_for(exc: errors.LooplineError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def _body(exc: errors.LooplineError) -> dict[str, object]:
    return {"error": type(exc).__name__, "message": exc.message, "field": exc.field}


async def _on_loopline_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.LooplineError)
    headers = {"Retry-After": "1"} if exc.retryable else None
    return JSONResponse(_body(exc), status_code=status_for(exc), headers=headers)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
        for e in exc.errors()
    ]
    first = problems[0] if problems else {"field": None, "message": "invalid request"}
    return JSONResponse(
        {"error": "InvalidArgument", "message": first["message"], "field": first["field"], "problems": problems},
        status_code=422,
    )


#: Framework-level refusals (no such route, wrong method) in the same body shape as ours.
_HTTP_ERRORS = {401: "Unauthenticated", 403: "PermissionDenied", 404: "NotFound", 405: "MethodNotAllowed",
                409: "FailedPrecondition", 413: "InvalidArgument", 415: "InvalidArgument"}


async def _on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404 and exc.detail == "Not Found":
        message = f"no such resource: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return JSONResponse({"error": _HTTP_ERRORS.get(exc.status_code, "HTTPError"), "message": message, "field": None},
                        status_code=exc.status_code, headers=getattr(exc, "headers", None))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(errors.LooplineError, _on_loopline_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
