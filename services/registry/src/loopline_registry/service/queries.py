"""Query parameters shared by handlers and repositories: pages and filters.

Page tokens are opaque to callers (base64 of the last key of the page) and are
decoded here, never trusted: a token that does not decode is an InvalidArgument.

>>> decode_token(encode_token("fraud")) == "fraud"
True
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime

from loopline_core.errors import InvalidArgument

DEFAULT_PAGE = 50
MAX_PAGE = 500


@dataclass(frozen=True)
class Page:
    size: int = 0
    token: str = ""

    @property
    def limit(self) -> int:
        if self.size < 0:
            raise InvalidArgument("page_size must not be negative", field="page_size")
        return min(self.size or DEFAULT_PAGE, MAX_PAGE)


@dataclass(frozen=True)
class AuditFilter:
    model: str = ""
    action: str = ""
    since: datetime | None = None
    until: datetime | None = None
    after_id: int = 0
    limit: int = DEFAULT_PAGE


def encode_token(last_key: str) -> str:
    return base64.urlsafe_b64encode(last_key.encode()).decode() if last_key else ""


def decode_token(token: str) -> str:
    if not token:
        return ""
    try:
        return base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("page_token is not a token this service issued", field="page_token") from None


def decode_int_token(token: str) -> int:
    raw = decode_token(token)
    if raw and not raw.isdigit():
        raise InvalidArgument("page_token is not a token this service issued", field="page_token")
    return int(raw or 0)
