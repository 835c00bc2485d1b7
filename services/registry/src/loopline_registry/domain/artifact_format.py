"""What an uploaded file really is, from its bytes, whatever the caller declared.

TorchScript archives are zip files holding ``code/`` (the serialized program) and
``constants.pkl`` next to ``data.pkl``; torch.jit.load reads those pickles with a
restricted unpickler, so they are accepted. Everything else that is pickle, a raw
pickle stream or a ``torch.save`` zip (data.pkl without code/), is refused because
loading it runs arbitrary code.

>>> sniff(b"\\x80\\x04\\x95", None)
'pickle'
>>> sniff(b"PK\\x03\\x04", ["m/data.pkl", "m/constants.pkl", "m/code/__torch__/m.py"])
'torchscript'
>>> sniff(b"PK\\x03\\x04", ["archive/data.pkl", "archive/data/0"])
'torch-save-pickle'
"""

from __future__ import annotations

from collections.abc import Sequence

from loopline_core.errors import InvalidArgument

from loopline_registry.domain.version import FORMATS

ZIP_MAGIC = b"PK\x03\x04"
#: How many leading bytes sniffing needs.
HEAD_BYTES = 16


def _is_torchscript(members: Sequence[str]) -> bool:
    roots = {m.split("/", 1)[0] for m in members if "/" in m}
    return any(f"{r}/constants.pkl" in members and f"{r}/data.pkl" in members
               and any(m.startswith(f"{r}/code/") for m in members) for r in roots)


def sniff(head: bytes, zip_members: Sequence[str] | None) -> str:
    """One of torchscript, onnx, pickle, torch-save-pickle, zip, unknown."""
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return "pickle"
    if head.startswith(ZIP_MAGIC):
        if zip_members is None:
            return "unknown"
        if _is_torchscript(zip_members):
            return "torchscript"
        return "torch-save-pickle" if any(m.endswith("data.pkl") for m in zip_members) else "zip"
    # An ONNX ModelProto is a protobuf whose first field is ir_version (field 1, varint).
    if head[:1] == b"\x08":
        return "onnx"
    return "unknown"


def check_declared_format(declared: str) -> str:
    if declared not in FORMATS:
        raise InvalidArgument(
            f"format {declared!r} is not accepted: use one of {', '.join(FORMATS)}; "
            "pickle-based formats (.pkl, torch.save) are refused", field="format")
    return declared


def check_content(declared: str, head: bytes, zip_members: Sequence[str] | None) -> None:
    found = sniff(head, zip_members)
    if found in ("pickle", "torch-save-pickle"):
        raise InvalidArgument(
            f"the upload is a {found} file; pickle-based formats are refused because loading them runs code. "
            "Export TorchScript (torch.jit.script/trace + save) or ONNX", field="content")
    if found != declared:
        raise InvalidArgument(f"the upload was declared {declared} but its bytes look like {found}",
                              field="content")
