"""Asset download over HTTP(S) against a real local http.server."""

from __future__ import annotations

import hashlib
import http.server
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from player.errors import AssetError
from player.net.fetch import Fetcher, check_url, fetch_url
from player.net.protocol import Fetched

BODY = bytes(range(256)) * 400  # 100 KiB
SHA = hashlib.sha256(BODY).hexdigest()


class Server:
    """A local HTTP server with a few misbehaving routes; counts the requests it got."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.paths: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.paths.append(self.path)
                route = getattr(outer, "route_" + self.path.strip("/").replace("-", "_"), None)
                if route is None:
                    self.send_error(404, "not here")
                    return
                route(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @staticmethod
    def _send(h: http.server.BaseHTTPRequestHandler, body: bytes, length: int | None = None) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(body) if length is None else length))
        h.end_headers()
        h.wfile.write(body)

    def route_ok(self, h: http.server.BaseHTTPRequestHandler) -> None:
        self._send(h, BODY)

    def route_big(self, h: http.server.BaseHTTPRequestHandler) -> None:
        self._send(h, b"", length=10**9)  # announces a gigabyte, sends nothing

    def route_unannounced(self, h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.end_headers()  # no Content-Length: the body ends when the connection closes
        h.wfile.write(BODY)

    def route_stall(self, h: http.server.BaseHTTPRequestHandler) -> None:
        self.release.wait(10)  # never answers while the test runs

    def route_drip(self, h: http.server.BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Length", str(len(BODY)))
        h.end_headers()
        for i in range(0, len(BODY), 1024):  # each read is quick; the whole is slow
            if self.release.wait(0.05):
                return
            h.wfile.write(BODY[i:i + 1024])
            h.wfile.flush()

    def _redirect(self, h: http.server.BaseHTTPRequestHandler, where: str) -> None:
        h.send_response(302)
        h.send_header("Location", where)
        h.send_header("Content-Length", "0")
        h.end_headers()

    def route_to_file(self, h: http.server.BaseHTTPRequestHandler) -> None:
        self._redirect(h, "file:///etc/hostname")

    def route_to_ftp(self, h: http.server.BaseHTTPRequestHandler) -> None:
        self._redirect(h, "ftp://127.0.0.1/x")

    def route_to_ok(self, h: http.server.BaseHTTPRequestHandler) -> None:
        self._redirect(h, "/ok")

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_lands_under_its_hash(server: Server, tmp_path: Path) -> None:
    path = fetch_url(server.url + "/ok", "sha256:" + SHA, tmp_path)
    assert path == tmp_path / SHA and path.read_bytes() == BODY
    assert leftovers(tmp_path) == [SHA]
    assert fetch_url(server.url + "/to-ok", SHA, tmp_path / "sub").read_bytes() == BODY


def test_sha_mismatch_is_refused_and_nothing_is_kept(server: Server, tmp_path: Path) -> None:
    with pytest.raises(AssetError, match=f"has sha256 {SHA}, expected {'0' * 64}"):
        fetch_url(server.url + "/ok", "0" * 64, tmp_path)
    assert leftovers(tmp_path) == []


def test_announced_size_over_the_cap_is_refused_before_reading(server: Server, tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(AssetError, match=r"too large \(1000000000 bytes, at most 1000\)"):
        fetch_url(server.url + "/big", SHA, tmp_path, max_bytes=1000)
    assert time.monotonic() - t0 < 2
    assert leftovers(tmp_path) == []


def test_unannounced_size_over_the_cap_is_cut_while_reading(server: Server, tmp_path: Path) -> None:
    with pytest.raises(AssetError, match=r"too large \(more than 50000 bytes\)"):
        fetch_url(server.url + "/unannounced", SHA, tmp_path, max_bytes=50_000)
    assert leftovers(tmp_path) == []
    assert fetch_url(server.url + "/unannounced", SHA, tmp_path, max_bytes=len(BODY)).read_bytes() == BODY


def test_a_server_that_never_answers_times_out(server: Server, tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(AssetError, match="timed out after 0.5 s"):
        fetch_url(server.url + "/stall", SHA, tmp_path, timeout=0.5)
    assert time.monotonic() - t0 < 2


def test_the_time_out_bounds_the_whole_download(server: Server, tmp_path: Path) -> None:
    t0 = time.monotonic()
    with pytest.raises(AssetError, match="timed out after 0.5 s"):
        fetch_url(server.url + "/drip", SHA, tmp_path, timeout=0.5)
    assert time.monotonic() - t0 < 2
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("scheme_url", ["file://{file}", "ftp://127.0.0.1/{sha}", "data:,hello",
                                        "gopher://127.0.0.1/", "{file}", "//127.0.0.1/ok"])
def test_other_schemes_are_refused_before_any_io(server: Server, tmp_path: Path, scheme_url: str) -> None:
    local = tmp_path / "local.bin"
    local.write_bytes(BODY)  # would otherwise be a perfectly good asset
    url = scheme_url.format(file=local, sha=SHA)
    with pytest.raises(AssetError, match="only http and https are accepted"):
        fetch_url(url, SHA, tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    assert server.paths == []


@pytest.mark.parametrize(("route", "scheme"), [("/to-file", "file"), ("/to-ftp", "ftp")])
def test_redirects_to_other_schemes_are_refused(server: Server, tmp_path: Path, route: str, scheme: str) -> None:
    with pytest.raises(AssetError, match=f'redirects to .*not "{scheme}"'):
        fetch_url(server.url + route, SHA, tmp_path)
    assert leftovers(tmp_path) == []


def test_http_errors_and_unreachable_hosts(server: Server, tmp_path: Path) -> None:
    with pytest.raises(AssetError, match="HTTP 404"):
        fetch_url(server.url + "/missing", SHA, tmp_path)
    closed = server.url.rsplit(":", 1)[0] + ":1"
    with pytest.raises(AssetError, match="refused"):
        fetch_url(closed + "/ok", SHA, tmp_path)
    with pytest.raises(AssetError, match="sha256:<64 lowercase hex digits>"):
        fetch_url(server.url + "/ok", "sha1:abc", tmp_path)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_generated_urls_are_accepted_only_when_http(url: str) -> None:
    try:
        check_url(url)
    except AssetError as exc:
        assert str(exc)
        return
    assert url.lower().startswith(("http://", "https://"))


def test_fetcher_reports_on_its_own_threads(server: Server, tmp_path: Path) -> None:
    inbox: queue.Queue[object] = queue.Queue()
    fetcher = Fetcher(tmp_path, inbox.put, timeout=0.5, workers=1)
    try:
        assert fetcher.submit(server.url + "/stall", "1" * 64)
        assert not fetcher.submit(server.url + "/stall", "sha256:" + "1" * 64)  # already in flight
        assert fetcher.submit(server.url + "/ok", "sha256:" + SHA)
        assert fetcher.submit("ftp://127.0.0.1/x", "2" * 64)
        results = {}
        for _ in range(3):
            item = inbox.get(timeout=5)
            assert isinstance(item, Fetched)
            results[item.sha] = item
        assert "timed out" in (results["1" * 64].reason or "")
        assert results[SHA].path == tmp_path / SHA and results[SHA].reason is None
        assert "only http and https" in (results["2" * 64].reason or "")
    finally:
        fetcher.close()
        fetcher.close()
    with pytest.raises(RuntimeError):
        fetcher.submit(server.url + "/ok", SHA)
