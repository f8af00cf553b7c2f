"""One uploaded file, streamed from the request body to a temporary file, checked as it arrives.

The body (``multipart/form-data``, field ``file``) is parsed incrementally with python-multipart:
each chunk goes to disk as it is read, so a request never sits in memory, and the size limit is
enforced while reading, so an oversized upload is refused (413) as soon as it passes the limit,
not after it has been stored. A ``Content-Length`` above the limit is refused before anything is
read. The stored file is then sniffed by its first bytes (`mclcr_keras.data.media.sniff_kind`):
anything that is not an image or a video is refused (415), whatever its name or declared type.

Errors are `RequestError` (an HTTP status and a one-line message); the caller deletes the folder.

Example:

>>> safe_filename("../../etc/passwd"), safe_filename("C:\\\\clips\\\\a.mp4"), safe_filename("")
('passwd', 'a.mp4', 'upload')
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import unicodedata

from mclcr_keras.data.media import sniff_kind

FIELD = "file"
# Bytes of the body besides the file's own: boundaries, part headers, small form fields.
FORM_OVERHEAD = 64 * 1024

__all__ = ["FIELD", "RequestError", "Upload", "receive_upload", "safe_filename"]


class RequestError(Exception):
    """A request refused with an HTTP ``status`` and a one-line message (JSON ``{"error"}``)."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclasses.dataclass
class Upload:
    """A stored upload: its path on disk, the client's file name (cleaned), size and kind."""

    path: str
    filename: str
    size: int
    kind: str


def safe_filename(name: str | None, limit: int = 200) -> str:
    """The client's file name reduced to a plain base name (no folders, no control characters)."""
    name = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    # At most `limit` bytes of UTF-8 (file systems count bytes), cut at a character boundary.
    name = name.encode("utf-8")[:limit].decode("utf-8", "ignore")
    return name if name not in ("", ".", "..") else "upload"


def _too_large(limit: int) -> RequestError:
    return RequestError(413, f"upload larger than the limit of {limit / 2**20:g} MB")


class _FormWriter:
    """python-multipart callbacks: the ``file`` part to ``path``; size checked on every chunk."""

    def __init__(self, path: str, limit: int):
        self.path, self.limit = path, limit
        self.filename: str | None = None
        self.size = self.other = 0
        self.handle = None
        self.current = None  # "file" | "other"
        self._header = self._value = b""
        self._disposition = b""

    def callbacks(self) -> dict:
        return {"on_part_begin": self.on_part_begin, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished,
                "on_part_data": self.on_part_data, "on_part_end": self.on_part_end}

    def on_part_begin(self):
        self._disposition, self.current = b"", None

    def on_header_field(self, data, start, end):
        self._header += data[start:end]

    def on_header_value(self, data, start, end):
        self._value += data[start:end]

    def on_header_end(self):
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header = self._value = b""

    def on_headers_finished(self):
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._disposition)
        if options.get(b"name", b"").decode("latin-1") != FIELD:
            self.current = "other"
            return
        if self.handle is not None or self.filename is not None:
            raise RequestError(400, f"one file per request: several '{FIELD}' parts")
        self.filename = safe_filename(options.get(b"filename", b"").decode("utf-8", "replace"))
        self.handle = open(self.path, "wb")
        self.current = "file"

    def on_part_data(self, data, start, end):
        count = end - start
        if self.current == "file":
            self.size += count
            if self.size > self.limit:
                raise _too_large(self.limit)
            self.handle.write(data[start:end])
        else:
            self.other += count
            if self.other > FORM_OVERHEAD:
                raise RequestError(413, "form fields besides 'file' are too large")

    def on_part_end(self):
        if self.current == "file":
            self.handle.close()
        self.current = None

    def close(self):
        if self.handle is not None and not self.handle.closed:
            self.handle.close()


def check_declared(headers, limit: int) -> bytes:
    """The multipart boundary; 415 for another body type, 413 for a declared length too large."""
    from python_multipart.multipart import parse_options_header

    content_type, options = parse_options_header(headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise RequestError(415, f"send the file as multipart/form-data, field '{FIELD}' "
                                "(curl -F file=@clip.mp4)")
    length = headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit + FORM_OVERHEAD:
        raise _too_large(limit)
    return options[b"boundary"]


async def receive_upload(request, folder: str, limit: int, seconds: float) -> Upload:
    """Streams the ``file`` part of ``request`` into ``folder`` and checks what arrived.

    Args:
        request: a Starlette request whose body has not been read.
        folder: an empty folder of this request (the caller deletes it).
        limit: the largest file accepted, in bytes.
        seconds: the time the whole upload may take (408 beyond: a stalled client).

    Raises:
        RequestError: 415 (not multipart, or not an image or video by content), 413 (too large),
            400 (no ``file`` part, an empty file, a malformed body), 408 (too slow).
    """
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import MultipartParser
    from starlette.requests import ClientDisconnect

    boundary = check_declared(request.headers, limit)
    os.mkdir(os.path.join(folder, "input"))
    writer = _FormWriter(os.path.join(folder, "input", "upload"), limit)
    parser = MultipartParser(boundary, writer.callbacks())

    async def consume():
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()

    try:
        await asyncio.wait_for(consume(), seconds)
    except asyncio.TimeoutError:
        raise RequestError(408, f"upload not finished within {seconds:g} s") from None
    except MultipartParseError as error:
        raise RequestError(400, f"malformed multipart body: {error}") from None
    except ClientDisconnect:
        raise RequestError(400, "the client disconnected during the upload") from None
    finally:
        writer.close()
    if writer.filename is None:
        raise RequestError(400, f"no file: send the image or video as multipart field '{FIELD}'")
    if writer.size == 0:
        raise RequestError(400, f"the uploaded file {writer.filename!r} is empty")
    kind = sniff_kind(writer.path)
    if kind is None:
        raise RequestError(415, f"{writer.filename!r} is not an image or a video (judged by its "
                                "content, not its name)")
    # Stored under the client's (cleaned) name, alone in its folder: predict's table, its figure
    # titles and decoders that look at the extension see what the client sent.
    path = os.path.join(folder, "input", writer.filename)
    os.replace(writer.path, path)
    return Upload(path=path, filename=writer.filename, size=writer.size, kind=kind)
