"""Object keys and error translation for the S3 artifact store.

Keys are built only from a verified 64-digit hex hash (``<prefix>sha256/<hex>``); the
prefix comes from settings and is checked once. botocore exceptions are turned into
the Loopline taxonomy here so nothing above the adapter sees them: connection
trouble, throttling and 5xx answers are Unavailable (the caller retries), a missing
object is NotFound, and configuration problems (no bucket, bad credentials) are
FailedPrecondition with a message that names the setting to fix.
"""

from __future__ import annotations

import re

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError as BotoConnectionError
from botocore.exceptions import HTTPClientError, NoCredentialsError, ReadTimeoutError
from loopline_core.errors import FailedPrecondition, InvalidArgument, LooplineError, NotFound, Unavailable

from loopline_registry.domain.names import check_sha256

_PREFIX = re.compile(r"(?:[A-Za-z0-9._-]+/)*")
_MISSING = frozenset({"NoSuchKey", "NotFound", "404"})
_BUSY = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout", "Throttling",
                   "ThrottlingException", "RequestTimeTooSkewed"})
_CREDENTIALS = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403", "ExpiredToken",
                          "InvalidToken"})


def check_prefix(prefix: str) -> str:
    """A key prefix is empty or slash-terminated path segments, none of them '.' or '..'."""
    segments = prefix.split("/")[:-1]
    if not _PREFIX.fullmatch(prefix) or any(s in (".", "..") for s in segments) or len(prefix) > 512:
        raise InvalidArgument(f"artifact key prefix {prefix!r} must be empty or like 'a/b/' "
                              "(letters, digits, '.', '_', '-' segments, ending with '/')", field="prefix")
    return prefix


def blob_key(prefix: str, sha256: str) -> str:
    return f"{prefix}sha256/{check_sha256(sha256)}"


def translate(error: BotoCoreError | ClientError, *, bucket: str, key: str | None = None) -> LooplineError:
    """The Loopline error for a botocore failure while working on ``bucket``/``key``."""
    where = f"s3://{bucket}/{key}" if key else f"bucket {bucket!r}"
    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code = str(info.get("Code", ""))
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        what = f"{code} (HTTP {status})" if status else code
        if code in _BUSY or status >= 500 or status == 429:
            return Unavailable(f"the artifact store is unavailable ({what} on {where}); retry later")
        if code == "NoSuchBucket" or (key is None and status == 404):  # HEAD answers carry no error code
            return FailedPrecondition(f"the artifact bucket {bucket!r} does not exist; create it or fix "
                                      "artifacts.bucket", field="bucket")
        if code in _MISSING or status == 404:
            return NotFound(f"{where} does not exist", field="sha256")
        if code in _CREDENTIALS or status == 403:
            return FailedPrecondition(f"the artifact store refused access to {where} ({what}); "
                                      "check artifacts.access_key_id and artifacts.secret_access_key",
                                      field="credentials")
        return FailedPrecondition(f"the artifact store refused the request on {where}: {what} "
                                  f"{info.get('Message', '')}".rstrip())
    if isinstance(error, NoCredentialsError):
        return FailedPrecondition("no credentials for the artifact store; set artifacts.access_key_id and "
                                  "artifacts.secret_access_key", field="credentials")
    if isinstance(error, (BotoConnectionError, HTTPClientError, ReadTimeoutError)):
        return Unavailable(f"the artifact store cannot be reached for {where} ({type(error).__name__}); "
                           "retry later")
    return FailedPrecondition(f"the artifact store client failed on {where}: {error}")
