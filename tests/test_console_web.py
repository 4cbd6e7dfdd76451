"""The console's web side over real HTTP: a uvicorn server on a free port, the real
fleet, history and MQTT bridge on a real mosquitto, and httpx as the browser.

Login, CSRF and roles are checked on the wire (status codes, cookies), the live
stream by reading /api/stream while a heartbeat is published on the broker, and the
two languages by the pages' words.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from fixtures_broker import Broker, free_port, wait_until  # noqa: E402

from player.console.auth import UsersFile  # noqa: E402
from player.console.i18n import STRINGS, pick_language  # noqa: E402
from player.console.server import Console, build  # noqa: E402
from player.console.settings import load_console_settings  # noqa: E402
from player.ctl.settings import load_settings  # noqa: E402

PREFIX = "signage"
OPERATOR = ("marie", "operator-secret-1")
VIEWER = ("paul", "viewer-secret-22")
CSRF_RE = re.compile(r'name="csrf" value="([^"]+)"')


def iso_now(offset: float = 0.0) -> str:
    return datetime.fromtimestamp(time.time() + offset, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def heartbeat(panel: str, groups: list[str], **extra: Any) -> bytes:
    hb = {"panel": panel, "ts": iso_now(), "firmware": "0.9.0", "uptime_s": 120, "playlist": None, "slide": None,
          "alerts": [], "brightness": 80, "ambient": None, "cpu_temp_c": 51.5, "fps": 0.0, "rss_mb": 40.0,
          "disk_free_mb": 900, "mqtt_reconnects": 0, "door_open": None, "clock_synced": True, "errors": [],
          "under_voltage": None, "throttled": None, "mqtt_connected": True, "groups": groups, "screen": "on",
          "display": {"output": "png", "healthy": True, "status": "ok"}}
    hb.update(extra)
    return json.dumps(hb).encode()


class Running:
    def __init__(self, console: Console, base: str, folder: Path) -> None:
        self.console = console
        self.base = base
        self.folder = folder

    def client(self, **kw: Any) -> Any:
        return httpx.Client(base_url=self.base, follow_redirects=False, timeout=10, **kw)

    def login(self, who: tuple[str, str]) -> Any:
        c = self.client()
        token = csrf_of(c.get("/login").text)
        r = c.post("/login", data={"username": who[0], "password": who[1], "csrf": token, "next": "/"})
        assert r.status_code == 303 and r.headers["location"] == "/", r.text[:300]
        return c


def csrf_of(html: str) -> str:
    m = CSRF_RE.search(html)
    assert m, "no csrf field in the page"
    return m.group(1)


def start_console(broker: Broker, folder: Path, **console_raw: Any) -> tuple[Console, Any, threading.Thread, str]:
    ctl = load_settings(None, {"broker": f"127.0.0.1:{broker.port}", "prefix": PREFIX}, env={})
    raw = {"users_file": str(folder / "users"), "secret_file": str(folder / "secret"), "db": str(folder / "c.db"),
           "screenshot_dir": str(folder / "screens"), **console_raw}
    settings = load_console_settings(raw, folder)
    users = UsersFile(settings.users_file)
    users.add(OPERATOR[0], "operator", OPERATOR[1])
    users.add(VIEWER[0], "viewer", VIEWER[1])
    console = build(settings, ctl)
    console.bridge.start()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(console.app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="on", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 10, "the console's HTTP server")
    wait_until(lambda: console.bridge.connected, 10, "the console's broker connection")
    return console, server, thread, f"http://127.0.0.1:{port}"


@pytest.fixture
def running(broker: Broker, tmp_path: Path) -> Iterator[Running]:
    console, server, thread, base = start_console(broker, tmp_path)
    try:
        yield Running(console, base, tmp_path)
    finally:
        server.should_exit = True
        thread.join(10)
        console.bridge.stop()
        console.history.close()


def add_panel(broker: Broker, running: Running, panel: str, groups: list[str]) -> None:
    broker.publish(f"{PREFIX}/panels/{panel}/online", b"true", retain=True)
    broker.publish(f"{PREFIX}/panels/{panel}/heartbeat", heartbeat(panel, groups), retain=True)
    wait_until(lambda: (running.console.fleet.row(panel) or {}).get("state") == "online", 5, f"{panel} online")


def test_login_required_and_wrong_password_refused(running: Running) -> None:
    c = running.client()
    r = c.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/login?next=%2F"
    assert c.get("/api/fleet").status_code == 401
    assert c.get("/panels/p1").status_code == 303
    cookie = c.get("/login").headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie
    token = csrf_of(c.get("/login").text)
    started = time.monotonic()
    r = c.post("/login", data={"username": OPERATOR[0], "password": "not-the-password", "csrf": token})
    assert r.status_code == 401 and "form" in r.text
    assert time.monotonic() - started >= 1.0  # failures are slowed down
    r = c.post("/login", data={"username": "nobody", "password": OPERATOR[1], "csrf": token})
    assert r.status_code == 401
    assert c.get("/api/fleet").status_code == 401
    r = c.post("/login", data={"username": OPERATOR[0], "password": OPERATOR[1], "csrf": token, "next": "/alerts"})
    assert r.status_code == 303 and r.headers["location"] == "/alerts"
    page = c.get("/")
    assert page.status_code == 200 and 'id="fleet"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert c.get("/api/fleet").json()["panels"] == []
    # a removed user's session ends at once
    UsersFile(running.folder / "users").remove(OPERATOR[0])
    assert c.get("/").status_code == 303


def test_csrf_and_roles(broker: Broker, running: Running) -> None:
    add_panel(broker, running, "p1", ["centre"])
    add_panel(broker, running, "p2", ["gare"])
    alerts = broker.sub(f"{PREFIX}/all/alerts/#", f"{PREFIX}/groups/+/alerts/#", f"{PREFIX}/panels/+/alerts/#")
    form = {"level": "critical", "title": "Crue de la Loire", "body": "Quais fermés", "scope": "all", "minutes": "30"}

    anon = running.client()
    token = csrf_of(anon.get("/login").text)
    assert anon.post("/login", data={"username": OPERATOR[0], "password": OPERATOR[1]}).status_code == 403
    assert anon.post("/alerts/confirm", data={**form, "csrf": token}).status_code == 303  # to the login page

    viewer = running.login(VIEWER)
    page = viewer.get("/alerts")
    assert page.status_code == 200 and "alert-form" not in page.text and "viewer-note" in page.text
    vtoken = csrf_of(page.text)
    assert viewer.post("/alerts/confirm", data={**form, "csrf": vtoken}).status_code == 403
    assert viewer.post("/alerts/send", data={**form, "csrf": vtoken, "alert_id": "x1"}).status_code == 403
    assert viewer.post("/playlists/push", data={"csrf": vtoken, "token": "x", "groups": "centre"}).status_code == 403

    op = running.login(OPERATOR)
    page = op.get("/alerts")
    assert 'id="alert-form"' in page.text
    token = csrf_of(page.text)
    assert op.post("/alerts/confirm", data=form).status_code == 403  # no token
    assert op.post("/alerts/confirm", data={**form, "csrf": token[:-2] + "xx"}).status_code == 403
    assert op.post("/alerts/confirm", data={**form, "csrf": vtoken}).status_code == 403  # another session's
    assert op.post("/panels/p1/screenshot", headers={"X-CSRF-Token": "nope"}).status_code == 403

    confirm = op.post("/alerts/confirm", data={**form, "scope": "groups", "groups": "centre", "csrf": token})
    assert confirm.status_code == 200
    assert re.search(r'id="reach-count"[^>]*>1<', confirm.text)
    confirm = op.post("/alerts/confirm", data={**form, "csrf": token})
    assert re.search(r'id="reach-count"[^>]*>2<', confirm.text) and 'id="alert-confirm"' in confirm.text
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', confirm.text))
    again = op.post("/alerts", data=fields)  # "Change": the form again, filled in, nothing sent
    assert again.status_code == 200 and 'value="Crue de la Loire"' in again.text
    assert viewer.post("/alerts", data={**fields, "csrf": vtoken}).status_code == 403
    assert alerts.messages == []  # nothing sent before the confirmation
    sent = op.post("/alerts/send", data=fields)
    assert sent.status_code == 303
    alert_id = fields["alert_id"]
    assert sent.headers["location"] == f"/alerts/{alert_id}"
    m = alerts.wait_for(f"{PREFIX}/all/alerts/{alert_id}", timeout=5)
    assert json.loads(m.payload)["title"] == "Crue de la Loire"
    page = op.get(f"/alerts/{alert_id}")
    assert re.search(r'id="reached">0 / 2<', page.text)
    broker.publish(f"{PREFIX}/panels/p1/events", json.dumps(
        {"type": "alert.displayed", "ts": iso_now(), "alert": alert_id, "displayed_at": iso_now()}))
    wait_until(lambda: op.get(f"/api/alerts/{alert_id}").json()["reached"] == 1, 5, "p1 displayed")
    page = op.get(f"/alerts/{alert_id}")
    assert re.search(r'<tr data-panel="p1">.*?data-status="displayed"', page.text, re.S)
    assert re.search(r'<tr data-panel="p2">.*?data-status="waiting"', page.text, re.S)

    cmd = broker.sub(f"{PREFIX}/panels/p1/cmd")
    r = op.post("/panels/p1/screenshot", headers={"X-CSRF-Token": token})
    assert r.status_code == 202
    assert json.loads(cmd.wait_for(f"{PREFIX}/panels/p1/cmd", timeout=5).payload)["cmd"] == "screenshot"

    cancel = op.post(f"/alerts/{alert_id}/cancel", data={"csrf": token})
    assert cancel.status_code == 303
    alerts.wait_for(f"{PREFIX}/all/alerts/{alert_id}", b"", timeout=5)
    assert viewer.post(f"/alerts/{alert_id}/cancel", data={"csrf": vtoken}).status_code == 403


def test_stream_delivers_a_heartbeat(broker: Broker, running: Running) -> None:
    add_panel(broker, running, "p1", ["centre"])
    c = running.login(VIEWER)
    assert httpx.get(running.base + "/api/stream").status_code == 401
    seen: list[dict[str, Any]] = []
    with c.stream("GET", "/api/stream", timeout=10) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines()
        event = None
        published_at = None
        for line in lines:
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "snapshot":
                    assert [p["panel"] for p in data["panels"]] == ["p1"]
                    published_at = time.monotonic()
                    broker.publish(f"{PREFIX}/panels/p1/heartbeat",
                                   heartbeat("p1", ["centre"], brightness=17, door_open=True), retain=True)
                elif event == "panel" and data["row"]["panel"] == "p1":
                    seen.append(data["row"])
                    if data["row"]["brightness"] == 17:
                        break
            assert published_at is None or time.monotonic() - published_at < 5, "no change within 5 s"
    assert seen[-1]["door_open"] is True and seen[-1]["state"] == "online"
    # The fleet page's rows come without the raw heartbeat; a panel's page gets it.
    assert "heartbeat" not in seen[-1] and "error_list" not in seen[-1]


def test_a_panel_page_stream_carries_that_panel_only_with_its_heartbeat(broker: Broker,
                                                                        running: Running) -> None:
    add_panel(broker, running, "p1", ["centre"])
    add_panel(broker, running, "p2", ["centre"])
    c = running.login(VIEWER)
    events: list[tuple[str, dict[str, Any]]] = []
    with c.stream("GET", "/api/stream?panel=p2", timeout=10) as r:
        event = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                events.append((event or "", data))
                if event == "snapshot":
                    assert [p["panel"] for p in data["panels"]] == ["p2"]
                    assert data["panels"][0]["heartbeat"]["panel"] == "p2"
                    # p1 first: its change must not come through, p2's must.
                    broker.publish(f"{PREFIX}/panels/p1/heartbeat", heartbeat("p1", ["centre"], brightness=11),
                                   retain=True)
                    broker.publish(f"{PREFIX}/panels/p2/heartbeat", heartbeat("p2", ["centre"], brightness=22),
                                   retain=True)
                elif event == "panel" and data["row"]["brightness"] == 22:
                    break
    panels = [d["row"] for e, d in events if e == "panel"]
    assert panels and all(row["panel"] == "p2" for row in panels), panels
    assert panels[-1]["heartbeat"]["brightness"] == 22


def test_pages_in_french_and_english(broker: Broker, running: Running) -> None:
    add_panel(broker, running, "p1", ["centre"])
    c = running.client()
    assert "Connexion" in c.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9"}).text
    assert "Sign in" in c.get("/login", headers={"Accept-Language": "en-GB,en;q=0.8,fr;q=0.5"}).text
    assert "Connexion" in c.get("/login", headers={"Accept-Language": "de-DE"}).text  # notices.language: fr
    assert 'lang="en"' in c.get("/login?lang=en", headers={"Accept-Language": "fr"}).text
    assert "Sign in" in c.get("/login", headers={"Accept-Language": "fr"}).text  # kept in the session
    op = running.login(OPERATOR)
    fr = op.get("/panels/p1?lang=fr").text
    en = op.get("/panels/p1?lang=en").text
    assert "Dernière capture" in fr and "Latest screenshot" in en
    assert "température du processeur" in fr and "processor temperature" in en
    fr = op.get("/alerts?lang=fr").text
    assert "Envoyer une alerte" in fr and "critique" in fr
    assert all(en_text and fr_text for en_text, fr_text in STRINGS.values())
    assert pick_language("en-US,en;q=0.9", "fr") == "en"
    assert pick_language("de, fr;q=0.4, en;q=0.6", "fr") == "en"
    assert pick_language(None, "en") == "en"


def test_health_history_and_metrics(broker: Broker, running: Running) -> None:
    add_panel(broker, running, "p1", ["centre"])
    assert httpx.get(running.base + "/healthz").json()["broker_connected"] is True
    body = httpx.get(running.base + "/metrics").text
    assert 'panel_brightness_percent{panel="p1"} 80.0' in body
    c = running.login(VIEWER)
    running.console.history.flush()
    data = c.get("/api/panels/p1/history?span=24h").json()
    assert data["span"] == "24h" and [v for _, v in data["metrics"]["brightness"] if v is not None] == [80.0]
    assert c.get("/api/panels/p1/history?span=1y").status_code == 400
    assert c.get("/api/panels/..%2Fetc/history").status_code == 404
    assert c.get("/panels/Not_A_Panel/screenshot.png").status_code == 404


def test_metrics_token(broker: Broker, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("s3cret-token\n")
    console, server, thread, base = start_console(broker, tmp_path, metrics_token_file=str(tmp_path / "token"),
                                                  secure_cookies=True)
    try:
        assert httpx.get(base + "/metrics").status_code == 401
        assert httpx.get(base + "/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(base + "/metrics", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        assert "; secure" in httpx.get(base + "/login").headers["set-cookie"].lower()
    finally:
        server.should_exit = True
        thread.join(10)
        console.bridge.stop()
        console.history.close()


def test_console_user_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from player.ctl.cli import main

    config = tmp_path / "panelctl.yaml"
    config.write_text(f"console:\n  users_file: {tmp_path / 'users'}\n")
    monkeypatch.setattr("sys.stdin", io.StringIO("long-enough-password\n"))
    out, err = io.StringIO(), io.StringIO()
    assert main(["--config", str(config), "console", "user", "add", "anne", "--role", "operator",
                 "--password-stdin"], out, err) == 0, err.getvalue()
    assert stat.S_IMODE(os.stat(tmp_path / "users").st_mode) == 0o600
    line = (tmp_path / "users").read_text()
    assert line.startswith("anne:operator:$argon2id$") and "long-enough-password" not in line
    assert UsersFile(tmp_path / "users").check("anne", "long-enough-password") is not None
    assert UsersFile(tmp_path / "users").check("anne", "long-enough-passwore") is None
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["--config", str(config), "console", "user", "add", "bob", "--role", "viewer",
                 "--password-stdin"], out, err) == 2
    assert "at least 8" in err.getvalue()
    out = io.StringIO()
    assert main(["--config", str(config), "console", "user", "list"], out, err) == 0
    assert out.getvalue() == "anne\toperator\n"
    assert main(["--config", str(config), "console", "user", "remove", "anne"], out, err) == 0
    assert main(["--config", str(config), "console", "user", "remove", "anne"], out, err) == 1
    assert UsersFile(tmp_path / "users").list() == []


def test_playlist_upload_preview_and_push(broker: Broker, running: Running) -> None:
    from PIL import Image

    add_panel(broker, running, "p1", ["centre"])
    pushed = broker.sub(f"{PREFIX}/groups/+/playlist", f"{PREFIX}/assets/+")
    picture = io.BytesIO()
    Image.new("RGB", (64, 32), (200, 30, 30)).save(picture, "PNG")
    playlist = {"id": "hiver", "version": 7, "slides": [
        {"id": "titre", "type": "text", "duration": 5, "title": "Marché de Noël"},
        {"id": "affiche", "type": "image", "duration": 5, "file": "affiche.png"}]}
    op = running.login(OPERATOR)
    token = csrf_of(op.get("/playlists").text)
    files = [("playlist", ("hiver.json", json.dumps(playlist).encode(), "application/json")),
             ("images", ("affiche.png", picture.getvalue(), "image/png"))]
    bad = op.post("/playlists/preview", data={"csrf": token}, files=[
        ("playlist", ("hiver.json", b'{"id": "hiver", "slides": []}', "application/json"))])
    assert bad.status_code == 400 and "banner error" in bad.text
    assert op.post("/playlists/preview", files=files).status_code == 403  # no token
    preview = op.post("/playlists/preview", data={"csrf": token, "size": "128x64"}, files=files)
    assert preview.status_code == 200, preview.text[:500]
    assert "hiver v7" in preview.text
    staged = re.search(r'name="token" value="([^"]+)"', preview.text)
    assert staged
    png = op.get(f"/playlists/staged/{staged.group(1)}.png")
    assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
    assert pushed.messages == []  # a preview sends nothing
    viewer = running.login(VIEWER)
    vtoken = csrf_of(viewer.get("/playlists").text)
    assert viewer.post("/playlists/push", data={"csrf": vtoken, "token": staged.group(1),
                                                "scope": "groups", "groups": "centre"}).status_code == 403
    r = op.post("/playlists/push", data={"csrf": token, "token": staged.group(1), "scope": "groups",
                                         "groups": "centre"})
    assert r.status_code == 303 and r.headers["location"] == "/playlists/hiver@7"
    m = pushed.wait_for(f"{PREFIX}/groups/centre/playlist", timeout=5)
    sent = json.loads(m.payload)
    assert sent["version"] == 7 and sent["slides"][1]["asset"].startswith("sha256:")
    pushed.wait_for(f"{PREFIX}/assets/{sent['slides'][1]['asset'][7:]}", timeout=5)
    broker.publish(f"{PREFIX}/panels/p1/events", json.dumps(
        {"type": "playlist.applied", "ts": iso_now(), "playlist": "hiver", "version": 7}))
    wait_until(lambda: 'data-status="applied"' in op.get("/playlists/hiver@7").text, 5, "p1 applied")


def test_console_without_its_extra(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['starlette'] = None; from player.ctl.cli import main; "
            "sys.exit(main(['console']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                       cwd=Path(__file__).resolve().parents[1], env={**os.environ, "HOME": str(tmp_path)})
    assert r.returncode == 2
    assert "pip install panel-player[console]" in r.stderr


def test_notices_on_the_fleet_page(broker: Broker, running: Running) -> None:
    from player.console.server import is_loopback

    broker.publish(f"{PREFIX}/panels/p3/online", b"true", retain=True)
    broker.publish(f"{PREFIX}/panels/p3/heartbeat", heartbeat("p3", ["centre"], door_open=True), retain=True)
    wait_until(lambda: (running.console.fleet.row("p3") or {}).get("door_open") is True, 5, "p3's door")
    c = running.login(VIEWER)
    page = c.get("/?lang=en").text
    assert re.search(r'<section id="notices" class="notices" hidden', page)
    raised = running.console.notices.evaluate()
    assert [n["kind"] for n in raised] == ["door"]
    notices = c.get("/api/notices").json()["notices"]
    assert [(n["panel"], n["kind"]) for n in notices] == [("p3", "door")]
    page = c.get("/").text
    assert '<li class="notice" data-kind="door"><a href="/panels/p3">p3</a>' in page
    assert not re.search(r'<section id="notices" class="notices" hidden', page)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.10") and not is_loopback("console.ville")
