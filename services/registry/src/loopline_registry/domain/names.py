"""Validation of everything a caller names: identifiers, hashes, artifact URIs, free text.

Names are checked against a narrow charset so that nothing a caller sends can be
read as a path, a URL or SQL anywhere downstream (they are never joined into a
path, but the Triton repository and the CLI print them too).

>>> check_name("fraud-detector_v2.1", "name")
'fraud-detector_v2.1'
>>> check_sha256("AB" * 32, "sha256") == "ab" * 32
True
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

from loopline_core.errors import InvalidArgument

NAME_MAX = 64
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ALIAS = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
ARTIFACT_URI_PREFIX = "artifact://sha256/"


def check_name(value: str, field: str) -> str:
    """Models, datasets, API keys: letters, digits, '.', '_', '-'; no '..'."""
    if not value:
        raise InvalidArgument(f"{field} is required", field=field)
    if len(value) > NAME_MAX:
        raise InvalidArgument(f"{field} is longer than {NAME_MAX} characters", field=field)
    if not _NAME.fullmatch(value) or ".." in value:
        raise InvalidArgument(
            f"{field} {value!r} is not a valid name: use letters, digits, '.', '_' and '-', "
            "start with a letter or digit, and no '..'", field=field)
    return value


def check_alias(value: str, field: str = "alias") -> str:
    if not _ALIAS.fullmatch(value or ""):
        raise InvalidArgument(
            f"{field} {value!r} is not a valid alias: lowercase letters, digits, '_' and '-', "
            "starting with a letter, at most 32 characters", field=field)
    return value


def check_sha256(value: str, field: str = "sha256") -> str:
    if not _SHA256.fullmatch(value or ""):
        raise InvalidArgument(f"{field} must be 64 hexadecimal digits (a sha256)", field=field)
    return value.lower()


def check_text(value: str, field: str, max_len: int = 4096) -> str:
    """Free text (descriptions, reasons, queries): bounded, and no NUL bytes."""
    if len(value) > max_len:
        raise InvalidArgument(f"{field} is longer than {max_len} characters", field=field)
    if "\x00" in value:
        raise InvalidArgument(f"{field} must not contain NUL bytes", field=field)
    return value


def required_reason(value: str, act: str) -> str:
    """A reason (free text, at most 1024 characters) that must not be blank: ``act`` needs one."""
    reason = check_text(value, "reason", 1024)
    if not reason.strip():
        raise InvalidArgument(f"a reason is required to {act}", field="reason")
    return reason


def check_positive(value: int, field: str) -> int:
    if value < 1:
        raise InvalidArgument(f"{field} must be a positive number, got {value}", field=field)
    return value


def check_key(key: str, field: str) -> str:
    """Keys of tags, params and metrics: letters, digits and '._:/-', at most 128."""
    if not _KEY.fullmatch(key):
        raise InvalidArgument(f"{field} key {key!r} is not valid: letters, digits and '._:/-', "
                              "starting with a letter or digit, at most 128 characters", field=field)
    return key


def check_labels(values: Mapping[str, str], field: str, max_items: int = 64) -> dict[str, str]:
    """Tags and params: short keys from a narrow charset, bounded text values."""
    if len(values) > max_items:
        raise InvalidArgument(f"{field} has more than {max_items} entries", field=field)
    for key, value in values.items():
        check_text(value, f"{field}.{check_key(key, field)}", 1024)
    return dict(values)


def check_metrics(values: Mapping[str, float], field: str, max_items: int = 256) -> dict[str, float]:
    if len(values) > max_items:
        raise InvalidArgument(f"{field} has more than {max_items} entries", field=field)
    for key, value in values.items():
        if not math.isfinite(value):
            raise InvalidArgument(f"{field}.{check_key(key, field)} must be a finite number",
                                  field=f"{field}.{key}")
        check_key(key, field)
    return {k: float(v) for k, v in values.items()}


def artifact_uri(sha256: str) -> str:
    return ARTIFACT_URI_PREFIX + sha256


def parse_artifact_uri(uri: str, field: str = "artifact_uri") -> str:
    """The sha256 named by a registry artifact URI; paths and other schemes are refused."""
    if not uri.startswith(ARTIFACT_URI_PREFIX) or not _SHA256.fullmatch(uri[len(ARTIFACT_URI_PREFIX):]):
        raise InvalidArgument(
            f"{field} must be a registry artifact URI '{ARTIFACT_URI_PREFIX}<sha256>'; "
            "file paths, file:// and other schemes are refused", field=field)
    return uri[len(ARTIFACT_URI_PREFIX):].lower()
