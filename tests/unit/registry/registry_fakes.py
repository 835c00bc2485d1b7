"""Fakes and sample artifacts shared by the registry's unit and integration tests."""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta


class FakeClock:
    def __init__(self, start: datetime = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


class SequentialIds:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"00000000-0000-4000-8000-{self.count:012d}"


def torchscript_bytes(tag: str = "m") -> bytes:
    """A zip laid out like torch.jit.save output (code/, constants.pkl, data.pkl)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{tag}/data.pkl", b"\x80\x02}q\x00.")
        archive.writestr(f"{tag}/constants.pkl", b"\x80\x02).")
        archive.writestr(f"{tag}/code/__torch__/model.py", f"def forward(self, x):\n    return x  # {tag}\n")
        archive.writestr(f"{tag}/version", "3\n")
    return buffer.getvalue()


def torch_save_zip_bytes() -> bytes:
    """torch.save of a module: a zip with data.pkl and no code/ (a pickle underneath)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"weights": [1, 2, 3]}, protocol=2))
        archive.writestr("archive/data/0", b"\x00" * 8)
        archive.writestr("archive/version", "3\n")
    return buffer.getvalue()


def pickle_bytes() -> bytes:
    return pickle.dumps({"model": "anything"}, protocol=4)


def onnx_bytes() -> bytes:
    # ModelProto: ir_version=7 (field 1, varint), producer_name="t" (field 2).
    return b"\x08\x07\x12\x01t" + b"\x00" * 32


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def chunks_of(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]
