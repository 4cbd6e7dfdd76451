"""Asset download over HTTP(S) (CONTRACT §4 ``url``): capped, timed, hash-checked.

Only ``http`` and ``https`` are accepted, also as redirect targets; the URL is
refused before any I/O otherwise. The file lands in ``dest_dir`` under its
hex sha256 only once its hash is verified (temporary file, fsync, rename).
:class:`Fetcher` runs downloads on worker threads so the main loop never waits.

Example::

    path = fetch_url("https://cms.example/affiche.png", "sha256:" + hex64, cache_dir, timeout=20)

    fetcher = Fetcher(cache_dir, inbox.put)      # each result arrives as a Fetched item
    fetcher.submit("https://cms.example/affiche.png", hex64)
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import re
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..errors import AssetError
from .protocol import Fetched

log = logging.getLogger(__name__)

SCHEMES = ("http", "https")
CHUNK = 64 * 1024
DEFAULT_TIMEOUT = 20.0
DEFAULT_MAX_BYTES = 50 * 2**20


def check_url(url: str) -> str:
    """Raise :class:`AssetError` unless ``url`` is an absolute http(s) URL with a host."""
    if not isinstance(url, str) or not url:
        raise AssetError("asset url is empty")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise AssetError(f"asset url {url!r} is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        shown = f'"{scheme}"' if scheme else "no scheme"
        raise AssetError(f"asset url {url!r}: only http and https are accepted, not {shown}")
    if not parts.hostname:
        raise AssetError(f"asset url {url!r} has no host")
    if any(ord(c) < 0x21 for c in url):
        raise AssetError(f"asset url {url!r} contains spaces or control characters")
    return url


def normalize_sha(sha: str) -> str:
    """``sha256:<hex>`` or ``<hex>`` → the 64 lowercase hex digits; AssetError otherwise."""
    hexdigest = sha.removeprefix("sha256:") if isinstance(sha, str) else ""
    if not re.fullmatch(r"[0-9a-f]{64}", hexdigest):
        raise AssetError(f"asset hash {sha!r} is not sha256:<64 lowercase hex digits>")
    return hexdigest


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    max_redirections = 5

    def http_error_302(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                       headers: Any) -> Any:
        location = headers.get("location") or headers.get("uri")
        if location:
            target = urllib.parse.urljoin(req.full_url, location)
            scheme = urllib.parse.urlsplit(target).scheme.lower()
            if scheme not in SCHEMES:
                raise AssetError(f"asset url {req.full_url!r} redirects to {target!r}: "
                                 f'only http and https are accepted, not "{scheme}"')
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


def _opener() -> urllib.request.OpenerDirector:
    # Built by hand so that no file:, ftp: or data: handler exists at all.
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.HTTPHandler(),
                    urllib.request.HTTPSHandler(), urllib.request.HTTPDefaultErrorHandler(),
                    _HttpOnlyRedirects(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def fetch_url(url: str, sha: str, dest_dir: Path, *, timeout: float = DEFAULT_TIMEOUT,
              max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Download ``url`` into ``dest_dir/<hex sha256>`` and return that path.

    ``timeout`` bounds the whole download, not only each socket operation.
    Raises :class:`AssetError` naming the cause: bad scheme, HTTP status,
    time-out, size over ``max_bytes``, or a hash that does not match ``sha``.
    """
    check_url(url)
    hexdigest = normalize_sha(sha)
    dest_dir = Path(dest_dir)
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": "panel-player", "Accept-Encoding": "identity"})
    tmp: Path | None = None
    try:
        with _opener().open(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            if length is not None and length.strip().isdigit() and int(length) > max_bytes:
                raise AssetError(f"asset at {url!r} is too large ({int(length)} bytes, at most {max_bytes})")
            dest_dir.mkdir(parents=True, exist_ok=True)
            fd, name = _mkstemp(dest_dir, hexdigest)
            tmp = Path(name)
            digest = hashlib.sha256()
            size = 0
            with os.fdopen(fd, "wb") as out:
                while True:
                    if time.monotonic() > deadline:
                        raise AssetError(f"asset at {url!r}: timed out after {timeout:g} s")
                    chunk = response.read1(CHUNK)  # read() would wait for a full chunk
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > max_bytes:
                        raise AssetError(f"asset at {url!r} is too large (more than {max_bytes} bytes)")
                    digest.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        if digest.hexdigest() != hexdigest:
            raise AssetError(f"asset at {url!r} has sha256 {digest.hexdigest()}, expected {hexdigest}")
        final = dest_dir / hexdigest
        os.replace(tmp, final)
        tmp = None
        _fsync_dir(dest_dir)
        return final
    except AssetError:
        raise
    except urllib.error.HTTPError as exc:
        raise AssetError(f"asset at {url!r}: HTTP {exc.code} {exc.reason}") from None
    except (TimeoutError, socket.timeout):
        raise AssetError(f"asset at {url!r}: timed out after {timeout:g} s") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, (TimeoutError, socket.timeout)):
            raise AssetError(f"asset at {url!r}: timed out after {timeout:g} s") from None
        raise AssetError(f"asset at {url!r}: {reason}") from None
    except (OSError, ValueError) as exc:  # connection reset, bad status line, disk full…
        raise AssetError(f"asset at {url!r}: {exc}") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _mkstemp(folder: Path, hexdigest: str) -> tuple[int, str]:
    return tempfile.mkstemp(prefix=f".{hexdigest[:16]}.", suffix=".part", dir=folder)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Fetcher:
    """Downloads on worker threads; each result goes to ``report`` as a :class:`Fetched`.

    ``report`` is typically the main loop's ``inbox.put``. A sha already being
    fetched is not fetched twice. ``close()`` is safe twice.
    """

    def __init__(self, dest_dir: Path, report: Callable[[Fetched], None], *,
                 timeout: float = DEFAULT_TIMEOUT, max_bytes: int = DEFAULT_MAX_BYTES,
                 workers: int = 2) -> None:
        self.dest_dir = Path(dest_dir)
        self.report = report
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._jobs: queue.Queue[tuple[str, str] | None] = queue.Queue()
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._threads = [threading.Thread(target=self._work, name=f"asset-fetch-{i}", daemon=True)
                         for i in range(workers)]
        for t in self._threads:
            t.start()

    def submit(self, url: str, sha: str) -> bool:
        """Queue a download; ``False`` when that sha is already queued or running."""
        hexdigest = sha.removeprefix("sha256:")
        with self._lock:
            if self._closed:
                raise RuntimeError("fetcher is closed")
            if hexdigest in self._busy:
                return False
            self._busy.add(hexdigest)
        self._jobs.put((url, hexdigest))
        return True

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            url, sha = job
            try:
                path = fetch_url(url, sha, self.dest_dir, timeout=self.timeout, max_bytes=self.max_bytes)
                result = Fetched(sha, url, path)
            except AssetError as exc:
                result = Fetched(sha, url, None, str(exc))
            except Exception as exc:  # noqa: BLE001 - a worker must report, never die
                log.exception("asset fetch of %s failed", url)
                result = Fetched(sha, url, None, f"asset at {url!r}: {exc!r}")
            with self._lock:
                self._busy.discard(sha)
            try:
                self.report(result)
            except Exception:  # noqa: BLE001
                log.exception("reporting the fetch of %s failed", url)

    def close(self, wait: float = 1.0) -> None:
        """Stop the workers (a download in progress ends at its own time-out)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(wait)

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
