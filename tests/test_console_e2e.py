"""The console end to end, as the town uses it: a real mosquitto, two real players,
``panelctl console`` as its own process, and Debian's chromium driven by Playwright.

It shows (issue 15): the fleet page lists both panels online; an operator sends a
critical alert through the form and its confirmation, both players show it and the
page shows "displayed" for each; one player is killed with SIGKILL and the page shows
it offline within 10 s without a reload; a viewer has no form and a POST is refused;
a form posted without its CSRF token is refused. On the way it writes the screenshots
of docs/console.md (fleet and panel pages at desktop and phone widths).

Chromium is the system's (/usr/bin/chromium, scripts/bootstrap.sh --tests installs it);
Playwright never downloads a browser here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
import yaml
from fixtures_broker import Broker, free_port, wait_until
from fixtures_player import PREFIX, PanelProcess, text_playlist
from playwright.sync_api import Browser, Page, sync_playwright

from player.console.auth import UsersFile
from player.console.history import History

ROOT = Path(__file__).resolve().parents[1]
IMG = ROOT / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
OPERATOR = ("marie", "operator-secret-1")
VIEWER = ("paul", "viewer-secret-22")


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def seed_history(db: Path, panel: str, groups: list[str]) -> None:
    """A simulated day of heartbeats for ``panel`` (injected timestamps), so that the charts
    of the screenshots have a day to show; the console reads the same database."""
    history = History(str(db))
    now = time.time()
    start = now - 24 * 3600
    history.record_state(panel, start, "online")
    for k in range(0, 24 * 12):
        t = start + k * 300
        hour = (datetime.fromtimestamp(t).hour + datetime.fromtimestamp(t).minute / 60)
        daylight = max(0.0, min(1.0, 1.2 - abs(hour - 13) / 6))
        offline = 9 * 12 <= k < 9 * 12 + 5  # 25 minutes without power in the night
        if offline:
            if k == 9 * 12:
                history.record_state(panel, t, "offline")
            continue
        if k == 9 * 12 + 5:
            history.record_state(panel, t, "online")
        uptime = int(t - start) if k < 9 * 12 else int(t - (start + (9 * 12 + 5) * 300))
        history.record_heartbeat(panel, {
            "panel": panel, "ts": iso(t), "firmware": "0.9.0", "uptime_s": uptime, "playlist": None, "slide": None,
            "alerts": [], "brightness": int(20 + 80 * daylight), "ambient": round(daylight * 0.9, 3),
            "cpu_temp_c": round(48 + 22 * daylight + (5 if 14 <= hour < 15 else 0), 1), "fps": 0.0,
            "rss_mb": round(41 + k * 0.004, 1), "disk_free_mb": 2100 - k // 20, "mqtt_reconnects": 0 if k < 110 else 1,
            "door_open": False, "groups": groups, "screen": "on"})
    history.flush()
    history.close()


class ConsoleProcess:
    def __init__(self, broker: Broker, folder: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.folder = folder
        self.config = folder / "panelctl.yaml"
        self.config.write_text(yaml.safe_dump({
            "broker": f"127.0.0.1:{broker.port}", "prefix": PREFIX,
            "console": {"users_file": str(folder / "users"), "secret_file": str(folder / "secret"),
                        "db": str(folder / "console.db"), "screenshot_dir": str(folder / "screens"),
                        "heartbeat_interval": 30, "notices": {"language": "en"}}}))
        users = UsersFile(folder / "users")
        users.add(OPERATOR[0], "operator", OPERATOR[1])
        users.add(VIEWER[0], "viewer", VIEWER[1])
        self.log = folder / "console.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("PANELCTL_CONFIG", "PANELCTL_KEY")}
        env.update(SDL_VIDEODRIVER="dummy", PYGAME_HIDE_SUPPORT_PROMPT="1")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "player.ctl.cli", "--config", str(self.config), "console",
                 "--listen", f"127.0.0.1:{self.port}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
            try:
                return bool(httpx.get(self.base + "/healthz", timeout=1).json()["broker_connected"])
            except httpx.HTTPError:
                return False

        wait_until(ready, 20, "the console to listen and reach the broker", step=0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("panelctl console did not stop on SIGTERM within 10 s")


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def login(browser: Browser, base: str, who: tuple[str, str], viewport: dict[str, int] = DESKTOP,
          locale: str = "en-GB") -> Page:
    context = browser.new_context(viewport=viewport, locale=locale, base_url=base)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto("/")
    assert "/login" in page.url
    page.fill("form#login input[name=username]", who[0])
    page.fill("form#login input[name=password]", who[1])
    page.click("form#login button[type=submit]")
    page.wait_for_url(base + "/")
    page.wait_for_selector("table#fleet")
    setattr(page, "js_errors", errors)
    return page


def state_of(page: Page, panel: str) -> str | None:
    cell = page.query_selector(f'table#fleet tr[data-panel="{panel}"] td.state')
    return None if cell is None else cell.get_attribute("data-state")


def small_targets(page: Page) -> list[str]:
    """The visible links, buttons and fields less than 44 px high (a finger's touch target)."""
    found: list[str] = page.evaluate("""() => Array.from(document.querySelectorAll(
            'header a, header button, main a, main button, main input, main select'))
          .filter((e) => e.offsetParent !== null && e.getBoundingClientRect().height < 44)
          .map((e) => e.outerHTML.slice(0, 80))""")
    return found


def red_share(p: PanelProcess) -> float:
    data = p.picture().tobytes()
    pixels = [data[i:i + 3] for i in range(0, len(data), 3)]
    return sum(1 for r, g, b in pixels if r > 100 and r > 2 * g and r > 2 * b) / len(pixels)


def test_console_in_a_browser(broker: Broker, tmp_path: Path, browser: Browser) -> None:
    IMG.mkdir(parents=True, exist_ok=True)
    (tmp_path / "console").mkdir()
    console = ConsoleProcess(broker, tmp_path / "console")
    seed_history(tmp_path / "console" / "console.db", "mairie-entree", ["centre"])
    players: list[PanelProcess] = []
    try:
        for pid, group, colour in (("mairie-entree", "centre", "#12ab34"), ("gare-nord", "gare", "#1234ab")):
            (tmp_path / pid).mkdir()
            # SIGKILL closes the player's socket and the broker publishes its last will (online false)
            # at once; keepalive 5 s (the least a player accepts) bounds it to 7.5 s on a silent link
            players.append(PanelProcess(broker, tmp_path / pid, pid, groups=[group], size=(192, 96), keepalive=5))
            broker.publish(f"{PREFIX}/groups/{group}/playlist",
                           json.dumps(text_playlist(f"{group}-hiver", 1, colour, title="Marché de Noël")).encode(),
                           retain=True)
        for p in players:
            p.wait_event("playlist.applied", timeout=15)
        console.start()
        op = login(browser, console.base, OPERATOR)

        # -- the fleet page lists both online
        for p in players:
            op.wait_for_selector(f'table#fleet tr[data-panel="{p.id}"] td.state[data-state="online"]', timeout=10000)
        op.evaluate("window.__not_reloaded = true")

        # -- a panel page: its screenshot on demand, its heartbeat, its charts
        op.goto("/panels/mairie-entree")
        op.click("#refresh-screenshot")
        op.wait_for_selector("#screenshot[src*='screenshot.png']", state="visible", timeout=10000)
        op.wait_for_function("document.querySelector('#screenshot').naturalWidth > 0", timeout=5000)
        op.wait_for_selector('.chart[data-chart="temperature"] svg path.series', timeout=5000)
        assert op.inner_text('#heartbeat tr[data-field="firmware"] td.val') != "—"
        op.screenshot(path=str(IMG / "console-panel-desktop.png"))
        op.goto("/panels/gare-nord")
        op.click("#refresh-screenshot")
        op.wait_for_selector("#screenshot[src*='screenshot.png']", state="visible", timeout=10000)

        # -- send a critical alert: form, confirmation naming the panels reached, follow-up
        op.goto("/alerts")
        op.check('form#alert-form input[name=level][value=critical]')
        op.fill("form#alert-form input[name=title]", "Crue de la Loire")
        op.fill("form#alert-form textarea[name=body]", "Quais fermés jusqu'à nouvel ordre")
        op.check('form#alert-form input[name=scope][value=all]')
        op.click("form#alert-form button[type=submit]")
        op.wait_for_selector("#reach-count")
        assert op.inner_text("#reach-count") == "2"
        marks = {p.id: p.sub.mark() for p in players}
        op.click("form#alert-confirm button#alert-send")
        op.wait_for_url(re.compile(r".*/alerts/crue-de-la-loire-[\w.-]+$"))
        alert_id = op.url.rsplit("/", 1)[1]
        for p in players:
            op.wait_for_selector(f'#alert-panels tr[data-panel="{p.id}"] td.status[data-status="displayed"]',
                                 timeout=15000)
        assert op.inner_text("#reached") == "2 / 2"
        for p in players:  # the players show it: their events, heartbeats and pictures
            p.wait_event("alert.displayed", after=marks[p.id], where=lambda e: e.get("alert") == alert_id)
            p.sub.wait_for(f"{p.topic}/heartbeat", after=marks[p.id],
                           where=lambda m: alert_id in json.loads(m.payload).get("alerts", []), timeout=10)
            wait_until(lambda p=p: red_share(p) > 0.3, 5, f"{p.id}'s picture to show the critical alert")

        # -- the screenshots for the docs (the wall shows the alert on both panels)
        for p in players:
            op.goto(f"/panels/{p.id}")
            before = op.get_attribute("#screenshot", "src")
            op.click("#refresh-screenshot")
            op.wait_for_function("(old) => document.querySelector('#screenshot').src.split('/').pop() !== "
                                 "(old || '').split('/').pop()", arg=before, timeout=10000)
        op.goto("/")
        op.wait_for_selector('#wall a[data-panel="gare-nord"] img', timeout=5000)
        op.wait_for_timeout(300)
        op.screenshot(path=str(IMG / "console-fleet-desktop.png"))
        phone = login(browser, console.base, OPERATOR, viewport=PHONE, locale="fr-FR")
        phone.wait_for_selector('table#fleet tr[data-panel="gare-nord"] td.state[data-state="online"]')
        phone.screenshot(path=str(IMG / "console-fleet-phone.png"))
        assert small_targets(phone) == []
        phone.goto("/panels/mairie-entree")
        phone.wait_for_selector('.chart[data-chart="temperature"] svg path.series', timeout=5000)
        phone.wait_for_function("document.querySelector('#screenshot').naturalWidth > 0", timeout=5000)
        phone.screenshot(path=str(IMG / "console-panel-phone.png"))
        assert small_targets(phone) == []

        # -- a player killed: offline within 10 s, without a reload
        op.goto("/")
        op.wait_for_selector('table#fleet tr[data-panel="gare-nord"] td.state[data-state="online"]')
        op.wait_for_selector('#live[data-state="open"]')
        op.evaluate("window.__not_reloaded = true")
        killed_at = time.monotonic()
        players[1].proc.kill()  # type: ignore[union-attr]  # SIGKILL
        op.wait_for_selector('table#fleet tr[data-panel="gare-nord"] td.state[data-state="offline"]', timeout=10000)
        assert time.monotonic() - killed_at < 10
        assert op.evaluate("window.__not_reloaded") is True
        assert state_of(op, "mairie-entree") == "online"

        # -- a viewer: no form, and a POST (even with the viewer's own token) is refused
        viewer = login(browser, console.base, VIEWER)
        viewer.goto("/alerts")
        assert viewer.query_selector("form#alert-form") is None
        token = viewer.get_attribute('meta[name="csrf-token"]', "content")
        r = viewer.request.post("/alerts/send", form={"csrf": token or "", "alert_id": "viewer-1", "level": "critical",
                                                      "title": "Non", "scope": "all"})
        assert r.status == 403
        r = viewer.request.post("/alerts/confirm", form={"csrf": token or "", "level": "critical", "title": "Non",
                                                         "scope": "all"})
        assert r.status == 403

        # -- a form posted without its CSRF token: refused, nothing sent
        sent = broker.sub(f"{PREFIX}/all/alerts/#")
        op.goto("/alerts")
        op.evaluate("document.querySelector('form#alert-form input[name=csrf]').remove()")
        op.fill("form#alert-form input[name=title]", "Sans jeton")
        with op.expect_response(lambda resp: resp.url.endswith("/alerts/confirm")) as answer:
            op.click("form#alert-form button[type=submit]")
        assert answer.value.status == 403
        r = op.request.post("/alerts/send", form={"alert_id": "no-token", "level": "critical", "title": "Non",
                                                  "scope": "all"})
        assert r.status == 403
        time.sleep(0.3)
        assert [m.topic for m in sent.messages if not m.topic.endswith(alert_id)] == []
        assert getattr(op, "js_errors") == [] and getattr(phone, "js_errors") == []
    finally:
        console.stop()
        for p in players:
            p.close()
