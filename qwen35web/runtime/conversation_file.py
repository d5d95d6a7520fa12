"""A conversation saved to one file (or blob): its messages and the model state at its end.

Standard library only (it runs in Pyodide, which has no numpy). Layout, little-endian:

    magic     8 bytes  b"Q35CHAT\\0"
    version   uint32   FORMAT_VERSION
    length    uint64   bytes of the header that follows
    header    JSON     bundle identity (manifest sha256, dtype), messages, the tools they were
                       rendered with (OpenAI function schemas; absent: none), token ids (an image's
                       tokens as its key, see vision.images), next position, and per tensor:
                       name, dtype, shape, offset and size of its bytes in the data — the states,
                       then the images the messages name (uint8 [H, W, 3] at the model's size,
                       named by their image id)
    data      the tensors' elements, one after the other, in header order
    checksum  32 bytes sha256 of everything before it

Reading checks, in this order, and stops at the first failure with one sentence: magic, version
(a newer one is named as such), checksum (truncated or corrupted), header, then whether it fits
the loaded bundle (identity, dtype, every tensor's name, dtype and shape). Nothing is restored
until everything has been checked. Reading copies only the header: the states are views of the
blob (a memoryview natively, the JS array itself in the page), copied once by the engine.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qwen35web import __version__
from qwen35web.runtime.bundle_format import Manifest
from qwen35web.runtime.chat import Message
from qwen35web.runtime.engine import ByteView, TensorBytes
from qwen35web.runtime.errors import RuntimeUserError
from qwen35web.runtime.graph_io import PastState

MAGIC = b"Q35CHAT\x00"
FORMAT_VERSION = 2  # 2: images and next_position (format 1 files still read)
_PREFIX = struct.Struct("<8sIQ")
DIGEST_BYTES = 32
_ITEM_BYTES = {"float32": 4, "float16": 2, "int64": 8, "uint8": 1}


class SavedConversationError(RuntimeUserError):
    """A saved conversation that cannot be restored into this bundle (nothing was restored)."""

    code = "bad-input"


@dataclass
class SavedTensor:
    name: str
    dtype: str
    shape: list[int]
    data: TensorBytes  # read back: a view of the file's bytes (images: bytes)


@dataclass
class SavedConversation:
    bundle_sha256: str
    bundle_dtype: str
    messages: list[Message]
    token_ids: list[int] = field(default_factory=list)  # what the tensors hold (none: no state)
    tensors: list[SavedTensor] = field(default_factory=list)
    images: list[SavedTensor] = field(default_factory=list)  # name: image id; uint8 [H, W, 3]
    next_position: int | None = None  # where positions continue (None: the token count; images take fewer)
    tools: list[dict[str, Any]] | None = None  # the tools the messages were rendered with (None: none)


def _element_count(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def _entries(tensors: list[SavedTensor], offset: int) -> list[dict[str, Any]]:
    entries = []
    for tensor in tensors:
        entries.append(
            {
                "name": tensor.name,
                "dtype": tensor.dtype,
                "shape": tensor.shape,
                "offset": offset,
                "nbytes": len(tensor.data),
            }
        )
        offset += len(tensor.data)
    return entries


def encode(saved: SavedConversation) -> bytes:
    entries = _entries(saved.tensors, 0)
    image_entries = _entries(saved.images, sum(len(t.data) for t in saved.tensors))
    header = {
        "created_by": f"qwen35web {__version__}",
        "bundle": {"manifest_sha256": saved.bundle_sha256, "dtype": saved.bundle_dtype},
        "messages": saved.messages,
        "token_ids": saved.token_ids,
        "next_position": saved.next_position,
        "tensors": entries,
        "images": image_entries,
    }
    if saved.tools:
        header["tools"] = saved.tools  # optional: a reader that predates it still restores the rest
    header_bytes = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    body = b"".join(
        [_PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes)), header_bytes]
        + [_buffer(t.data) for t in (*saved.tensors, *saved.images)]
    )
    return body + hashlib.sha256(body).digest()


def _buffer(data: TensorBytes) -> bytes | memoryview:
    return data if isinstance(data, bytes | memoryview) else data.tobytes()


def as_bytes(data: TensorBytes) -> bytes:
    """A tensor's bytes as `bytes` (a copy of a view: for an image's few hundred KB, not the states)."""
    return data if isinstance(data, bytes) else data.tobytes()


def _fail(message: str) -> None:
    raise SavedConversationError(message)


def _check_envelope(blob: ByteView, sha256: bytes | None) -> tuple[int, int]:
    """Magic, version, checksum; returns (header start, header length)."""
    size = len(blob)
    if size < len(MAGIC) or blob[: len(MAGIC)].tobytes() != MAGIC:
        _fail("not a saved qwen35web conversation")
    if size < _PREFIX.size + DIGEST_BYTES:
        _fail("truncated (shorter than its fixed header)")
    _, version, header_length = _PREFIX.unpack(blob[: _PREFIX.size].tobytes())
    if version > FORMAT_VERSION:
        _fail(
            f"written by a newer qwen35web (conversation format {version}; "
            f"this version reads format {FORMAT_VERSION}): upgrade to restore it"
        )
    if version < 1:
        _fail(f"unknown conversation format {version}")
    body_end = size - DIGEST_BYTES
    if sha256 is None:
        sha256 = hashlib.sha256(_buffer(blob[:body_end])).digest()
    if sha256 != blob[body_end:size].tobytes():
        _fail("truncated or corrupted (its checksum does not match)")
    if _PREFIX.size + header_length > body_end:
        _fail("corrupted (its header runs past the end)")
    return _PREFIX.size, header_length


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _tensor_entry(entry: Any, data: ByteView, expected_offset: int) -> SavedTensor:
    if not isinstance(entry, dict):
        _fail("corrupted (a tensor entry is not an object)")
    name, dtype, shape = entry.get("name"), entry.get("dtype"), entry.get("shape")
    offset, nbytes = entry.get("offset"), entry.get("nbytes")
    valid_shape = isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape)
    if not (isinstance(name, str) and dtype in _ITEM_BYTES and valid_shape):
        _fail(f"corrupted (tensor entry {name!r} lacks a name, a known dtype or a shape)")
    if not (_is_int(offset) and _is_int(nbytes)) or offset != expected_offset:
        _fail(f"corrupted (tensor {name} is not where the header says)")
    if nbytes != _element_count(shape) * _ITEM_BYTES[dtype] or offset + nbytes > len(data):
        _fail(f"corrupted (tensor {name} has {nbytes} bytes for shape {shape} {dtype})")
    return SavedTensor(name, dtype, list(shape), data[offset : offset + nbytes])


def decode(blob: bytes | ByteView, sha256: bytes | None = None) -> SavedConversation:
    """Parse and check a saved conversation (not yet against a bundle: see `check_fits`).

    `blob`: bytes, or a view of them (read in place: see ByteView). `sha256`: the digest of the blob
    less its last 32 bytes, when the caller has a faster way to compute it (the page: WebCrypto,
    native code, where Pyodide's hashlib takes ~0.4 s for 70 MB); None: hashlib here."""
    view: ByteView = memoryview(blob) if isinstance(blob, bytes | bytearray) else blob
    start, length = _check_envelope(view, sha256)
    try:
        header = json.loads(view[start : start + length].tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise SavedConversationError("corrupted (its header is not valid JSON)") from None
    if not isinstance(header, dict) or not isinstance(header.get("bundle"), dict):
        _fail("corrupted (its header lacks the bundle it belongs to)")
    bundle, messages, ids = header["bundle"], header.get("messages"), header.get("token_ids")
    if not isinstance(messages, list) or not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages
    ):
        _fail("corrupted (its messages are not a list of {role, content} objects)")
    if not isinstance(ids, list) or not all(_is_int(i) for i in ids):
        _fail("corrupted (its token ids are not a list of integers)")
    entries, image_entries = header.get("tensors"), header.get("images", [])
    if not isinstance(entries, list) or not isinstance(image_entries, list):
        _fail("corrupted (its header lists no tensors)")
    tools = header.get("tools")
    if tools is not None and not (isinstance(tools, list) and all(isinstance(t, dict) for t in tools)):
        _fail("corrupted (its tools are not a list of objects)")
    next_position = header.get("next_position")
    if next_position is not None and not (_is_int(next_position) and next_position >= 0):
        _fail("corrupted (its next position is not a count of positions)")
    data = view[start + length : len(view) - DIGEST_BYTES]
    tensors, offset = [], 0
    for entry in [*entries, *image_entries]:
        tensor = _tensor_entry(entry, data, offset)
        tensors.append(tensor)
        offset += len(tensor.data)
    if offset != len(data):
        _fail(f"corrupted ({len(data) - offset} bytes after the last tensor)")
    states, images = tensors[: len(entries)], tensors[len(entries) :]
    if any(t.dtype != "uint8" or len(t.shape) != 3 or t.shape[2] != 3 for t in images):
        _fail("corrupted (an image is not uint8 [height, width, 3])")
    return SavedConversation(
        str(bundle.get("manifest_sha256")),
        str(bundle.get("dtype")),
        messages,
        ids,
        states,
        images,
        next_position,
        tools,
    )


def _check_tensor(tensor: SavedTensor, spec: PastState, past_axis: int | None, past: int) -> None:
    expected = [1 if axis == 0 else past if axis == past_axis else dim for axis, dim in enumerate(spec.shape)]
    if tensor.dtype != spec.dtype or tensor.shape != expected:
        _fail(
            f"tensor {tensor.name} is {tensor.dtype} {tensor.shape}; "
            f"this bundle expects {spec.dtype} {expected}"
        )


def check_fits(
    saved: SavedConversation,
    manifest: Manifest,
    manifest_sha256: str,
    specs: Sequence[PastState],
    past_axes: Sequence[int | None],
) -> None:
    """The saved state belongs to this bundle: same identity and dtype, its states' names, dtypes
    and shapes (`past_axes`: each state's past axis, None for fixed-size states)."""
    if saved.bundle_dtype != manifest.dtype:
        _fail(f"saved with a {saved.bundle_dtype} bundle; this bundle is {manifest.dtype}")
    if saved.bundle_sha256 != manifest_sha256:
        _fail(
            f"saved with another bundle (manifest sha256 {saved.bundle_sha256[:12]}...; "
            f"this bundle's is {manifest_sha256[:12]}...)"
        )
    if not saved.tensors and not saved.token_ids:
        return
    if [t.name for t in saved.tensors] != [s.name for s in specs]:
        _fail("its tensors are not this bundle's states")
    if any(i >= manifest.vocab_size for i in saved.token_ids) or not saved.token_ids:
        _fail(f"its token ids do not fit this bundle's vocabulary of {manifest.vocab_size}")
    if any(i < 0 for i in saved.token_ids) and not saved.images:
        _fail("corrupted (its state holds image tokens but it carries no images)")
    for tensor, spec, axis in zip(saved.tensors, specs, past_axes, strict=True):
        _check_tensor(tensor, spec, axis, len(saved.token_ids))
