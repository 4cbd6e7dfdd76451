"""The console's web application (Starlette): pages, JSON API, live stream.

:func:`create_app` wires the fleet model, the history, the MQTT bridge and (when
given) H3's notices and metrics into one ASGI application; ``server.run`` serves it
with uvicorn. Pages (all behind a login):

* ``/``: the fleet (``table#fleet``, a row ``tr[data-panel]`` a panel, its state in
  ``td.state[data-state]``), a group and a text filter, a wall of screenshots, the
  notices; kept live by the server-sent events of ``/api/stream``;
* ``/panels/<id>``: its latest screenshot (and a refresh), its heartbeat explained,
  its history charts (``/api/panels/<id>/history?span=24h|7d|30d``);
* ``/alerts``: send (form, then a confirmation naming how many panels it reaches),
  follow (``/alerts/<id>``: "reached N / M", each panel's status) and cancel;
* ``/playlists``: upload a playlist and its pictures, preview its slides, push it,
  follow the panels' answers.

Every POST must carry the session's CSRF token (form field ``csrf`` or header
``X-CSRF-Token``), else 403; a viewer gets 403 on every operator action.
``/healthz`` and ``/metrics`` (a bearer token when ``metrics_token_file`` is set) need
no session.

Example::

    app = create_app(settings, fleet, history, bridge)
    uvicorn.run(app, host=settings.listen_host, port=settings.listen_port)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response, \
    StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..errors import ValidationError
from . import i18n
from .auth import User, UsersFile, csrf_ok, new_csrf_token
from .settings import read_or_create_secret

log = logging.getLogger("panelctl.console")

HERE = Path(__file__).resolve().parent
SESSION_MAX_AGE = 12 * 3600
LOGIN_DELAY_S = 1.0
SSE_KEEPALIVE_S = 15.0
CLIENT_QUEUE = 5000  # changes waiting for one browser; beyond, it gets a fresh snapshot instead
PANEL_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
ALERT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
LEVELS = ("critical", "warning", "info")
SPANS = ("24h", "7d", "30d")
STAGED_MAX = 20  # playlists uploaded and waiting for their push
STAGED_TTL_S = 3600.0
MAX_BODY = 64 * 1024 * 1024
MAX_PLAYLIST_FILE = 1024 * 1024
HEARTBEAT_ORDER = ("ts", "firmware", "uptime_s", "playlist", "slide", "alerts", "brightness", "brightness_source",
                   "brightness_floor", "brightness_derated", "ambient", "cpu_temp_c", "fps", "rss_mb",
                   "disk_free_mb", "mqtt_reconnects", "door_open", "under_voltage", "throttled", "clock_synced",
                   "screen", "display", "errors", "sensor_faults", "groups", "update", "alerts_unconfirmed")
SECURITY_HEADERS = {
    # No inline script or style anywhere: the pages' data travel in JSON script blocks.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
_preview_lock = threading.Lock()  # the preview draws with pygame's one display


class Forbidden(Exception):
    """403: a missing CSRF token or a role too low (or another status: 400 unreadable form, 404)."""

    def __init__(self, key: str = "forbidden", status: int = 403) -> None:
        super().__init__(key)
        self.key = key
        self.status = status


class LoginNeeded(Exception):
    pass


# -- the live stream ---------------------------------------------------------------------------


class Hub:
    """Fans the fleet's changes (any thread) out to each browser's asyncio queue."""

    RESYNC: dict[str, Any] = {"kind": "resync"}

    def __init__(self, fleet: Any) -> None:
        self.fleet = fleet
        self.clients: set[asyncio.Queue[dict[str, Any]]] = set()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._remove: Callable[[], None] | None = None

    def start(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            self._remove = self.fleet.add_listener(self._on_change)

    def stop(self) -> None:
        if self._remove is not None:
            self._remove()
            self._remove = None
        self.loop = None

    def _on_change(self, change: dict[str, Any]) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._dispatch, change)
            except RuntimeError:
                pass  # the loop closed meanwhile (shutting down)

    def _dispatch(self, change: dict[str, Any]) -> None:
        for q in list(self.clients):
            if q.full():
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(self.RESYNC)
            else:
                q.put_nowait(change)

    def open(self) -> asyncio.Queue[dict[str, Any]]:
        self.start()
        q: asyncio.Queue[dict[str, Any]] = asyncio.Queue(CLIENT_QUEUE)
        self.clients.add(q)
        return q

    def close(self, q: asyncio.Queue[dict[str, Any]]) -> None:
        self.clients.discard(q)


def fleet_row(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the fleet page needs it: without the raw heartbeat and error list, which
    only the panel's own page shows (with 2,000 panels they were half of the page)."""
    return {k: v for k, v in row.items() if k not in ("heartbeat", "error_list")}


def sse(event: str, data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    return f"event: {event}\ndata: {text}\n\n"


# -- helpers ---------------------------------------------------------------------------------------


def _listish(values: list[str]) -> list[str]:
    """Form values, each possibly comma-separated, stripped, without duplicates."""
    out: list[str] = []
    for v in values:
        for part in v.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def _when(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _value(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


class Staged:
    """A playlist uploaded for preview, waiting for its push."""

    def __init__(self, data: dict[str, Any], files: dict[str, bytes], preview: bytes | None, user: str,
                 title: str, slides: int) -> None:
        self.data = data
        self.files = files
        self.preview = preview
        self.user = user
        self.title = title
        self.slides = slides
        self.created = time.monotonic()


# -- the application ---------------------------------------------------------------------------------


def create_app(settings: Any, fleet: Any, history: Any, bridge: Any, notices: Any = None, metrics: Any = None,
               *, ctl: Any = None) -> Starlette:
    """The console application; ``ctl`` (CtlSettings) gives the message and asset limits."""
    users = UsersFile(Path(settings.users_file).expanduser())
    secret = read_or_create_secret(Path(settings.secret_file).expanduser()).hex()
    screens = Path(settings.screenshot_dir).expanduser()
    default_lang = getattr(getattr(settings, "notices", None), "language", "fr") or "fr"
    temp_limit = float(getattr(getattr(settings, "notices", None), "temp_c", 75.0))
    max_asset = int(getattr(ctl, "max_asset_kb", 2048)) * 1024
    max_message = int(getattr(ctl, "max_message_kb", 1024)) * 1024
    hub = Hub(fleet)
    staged: OrderedDict[str, Staged] = OrderedDict()

    def lang_of(request: Request) -> str:
        asked = request.query_params.get("lang")
        if asked in i18n.LANGUAGES:
            request.session["lang"] = asked
            return str(asked)
        kept = request.session.get("lang")
        if kept in i18n.LANGUAGES:
            return str(kept)
        return i18n.pick_language(request.headers.get("accept-language"), default_lang)

    def csrf_of(request: Request) -> str:
        token = request.session.get("csrf")
        if not isinstance(token, str) or not token:
            token = new_csrf_token()
            request.session["csrf"] = token
        return token

    def user_of(request: Request) -> User | None:
        name = request.session.get("user")
        if not isinstance(name, str):
            return None
        try:
            entry = users.read().get(name)
        except ValidationError:
            return None
        if entry is None:  # removed since: the session ends
            request.session.pop("user", None)
            return None
        return User(name, entry[0])

    def context(request: Request) -> dict[str, Any]:
        lang = lang_of(request)

        def t(key: str, **values: Any) -> str:
            return i18n.translate(lang, key, **values)

        other = "en" if lang == "fr" else "fr"
        query = dict(request.query_params)
        query["lang"] = other
        return {"t": t, "lang": lang, "csrf": csrf_of(request), "user": user_of(request),
                "lang_switch": f"{request.url.path}?{urlencode(query)}", "when": _when, "value": _value,
                "client_strings": i18n.client_strings(lang),
                "broker_ok": bool(getattr(bridge, "connected", True)), "path": request.url.path}

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                             autoescape=jinja2.select_autoescape(default=True, default_for_string=True))
    templates = Jinja2Templates(env=env, context_processors=[context])

    def page(request: Request, name: str, status: int = 200, **values: Any) -> Response:
        response = templates.TemplateResponse(request, name, values, status_code=status)
        response.headers["Cache-Control"] = "no-store"
        response.headers.update(SECURITY_HEADERS)
        return response

    async def form_of(request: Request) -> FormData:
        try:
            return await request.form(max_files=200, max_fields=2000)
        except MultiPartException as exc:
            raise Forbidden(str(exc), 400) from None

    Handler = Callable[[Request, User], Awaitable[Response]]

    def guarded(operator: bool = False, api: bool = False) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
        """Login (and, for POST, the CSRF token; for operator actions, the role) before ``fn``."""

        def wrap(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
            async def endpoint(request: Request) -> Response:
                if request.method == "POST":
                    given = request.headers.get("x-csrf-token")
                    if given is None:
                        form = await form_of(request)
                        raw = form.get("csrf")
                        given = raw if isinstance(raw, str) else None
                    if not csrf_ok(request.session.get("csrf"), given):
                        raise Forbidden("csrf")
                user = user_of(request)
                if user is None:
                    if api:
                        return JSONResponse({"error": "login required"}, status_code=401)
                    raise LoginNeeded()
                if operator and not user.operator:
                    raise Forbidden()
                return await fn(request, user)

            return endpoint

        return wrap

    # -- errors
    async def on_forbidden(request: Request, exc: Exception) -> Response:
        key, status = (exc.key, exc.status) if isinstance(exc, Forbidden) else ("forbidden", 403)
        lang = lang_of(request)
        text = i18n.translate(lang, key) if key in i18n.STRINGS else key
        if request.headers.get("x-csrf-token") is not None or request.url.path.startswith("/api/"):
            return JSONResponse({"error": text}, status_code=status)
        return page(request, "error.html", status=status, message=text)

    async def on_login_needed(request: Request, exc: Exception) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)

    # -- login
    async def login_page(request: Request) -> Response:
        if user_of(request) is not None:
            return RedirectResponse(_safe_next(request.query_params.get("next")), status_code=303)
        return page(request, "login.html", failed=False, next=_safe_next(request.query_params.get("next")),
                    no_users=not users.read())

    async def login(request: Request) -> Response:
        form = await form_of(request)
        if not csrf_ok(request.session.get("csrf"), form.get("csrf")):
            raise Forbidden("csrf")
        name, password = form.get("username"), form.get("password")
        target = _safe_next(str(form.get("next") or "/"))
        user = None
        if isinstance(name, str) and isinstance(password, str) and name and password:
            user = await run_in_threadpool(users.check, name, password)
        if user is None:
            log.warning("console: failed login for %r from %s", name, request.client.host if request.client else "?")
            await asyncio.sleep(LOGIN_DELAY_S)
            return page(request, "login.html", status=401, failed=True, next=target, no_users=not users.read())
        lang = request.session.get("lang")
        request.session.clear()
        request.session.update({"user": user.name, "csrf": new_csrf_token(), "login_at": time.time()})
        if lang in i18n.LANGUAGES:
            request.session["lang"] = lang
        log.info("console: %s (%s) signed in", user.name, user.role)
        return RedirectResponse(target, status_code=303)

    @guarded()
    async def logout(request: Request, user: User) -> Response:
        lang = request.session.get("lang")
        request.session.clear()
        if lang in i18n.LANGUAGES:
            request.session["lang"] = lang
        return RedirectResponse("/login", status_code=303)

    # -- fleet
    def active_notices() -> list[dict[str, Any]]:
        if notices is None:
            return []
        try:
            return list(notices.active())
        except Exception:  # noqa: BLE001 - a notices fault must not take the fleet page down
            log.exception("console: notices.active() failed")
            return []

    @guarded()
    async def fleet_page(request: Request, user: User) -> Response:
        rows = [fleet_row(r) for r in fleet.rows()]
        titles = {a["id"]: a["title"] for a in fleet.alert_reports()}
        return page(request, "fleet.html", rows=rows, alert_titles=titles, temp_limit=temp_limit,
                    groups=fleet.groups(), count=len(rows), notices=active_notices(), now=time.time())

    @guarded(api=True)
    async def api_fleet(request: Request, user: User) -> Response:
        return JSONResponse({"now": time.time(), "panels": fleet.rows(), "groups": fleet.groups(),
                             "broker_connected": bool(getattr(bridge, "connected", True))})

    @guarded(api=True)
    async def api_notices(request: Request, user: User) -> Response:
        return JSONResponse({"notices": active_notices()})

    @guarded(api=True)
    async def api_stream(request: Request, user: User) -> Response:
        # ?panel=ID: a panel's page, which wants that panel's whole rows (raw heartbeat
        # included) and no other panel's; without it, the fleet page's slim rows of all.
        only = request.query_params.get("panel")

        def snapshot() -> str:
            if only is not None:
                rows = [r for r in [fleet.row(only)] if r is not None]
            else:
                rows = [fleet_row(r) for r in fleet.rows()]
            return sse("snapshot", {"now": time.time(), "panels": rows})

        q = hub.open()

        async def events() -> AsyncIterator[str]:
            try:
                yield "retry: 2000\n\n"
                yield snapshot()
                while True:
                    try:
                        change = await asyncio.wait_for(q.get(), SSE_KEEPALIVE_S)
                    except TimeoutError:
                        yield f": keep-alive {int(time.time())}\n\n"
                        continue
                    kind = str(change.get("kind", "change"))
                    if kind == "resync":
                        yield snapshot()
                    elif kind == "panel":
                        row = change.get("row") or {}
                        if only is None:
                            yield sse(kind, {"kind": kind, "row": fleet_row(row)})
                        elif row.get("panel") == only:
                            yield sse(kind, change)
                    else:
                        yield sse(kind, change)
            finally:
                hub.close(q)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # -- a panel
    def panel_id(request: Request) -> str:
        pid = str(request.path_params["panel"])
        if not PANEL_RE.match(pid):
            raise Forbidden("not_found", 404)
        return pid

    @guarded()
    async def panel_page(request: Request, user: User) -> Response:
        pid = panel_id(request)
        row = fleet.row(pid)
        if row is None:
            return page(request, "error.html", status=404,
                        message=i18n.translate(lang_of(request), "panel.unknown", panel=pid))
        hb = row.get("heartbeat") or {}
        keys = [k for k in HEARTBEAT_ORDER if k in hb] + sorted(k for k in hb if k not in HEARTBEAT_ORDER
                                                                 and k not in ("panel", "mqtt_connected"))
        lang = lang_of(request)
        fields = [(k, _value(hb.get(k)), i18n.field_meaning(lang, k)) for k in keys]
        return page(request, "panel.html", row=row, temp_limit=f"{temp_limit:g}",
                    alert_titles={a["id"]: a["title"] for a in fleet.alert_reports()},
                    fields=fields, spans=SPANS, now=time.time())

    @guarded()
    async def screenshot_png(request: Request, user: User) -> Response:
        path = screens / f"{panel_id(request)}.png"
        if not path.is_file():
            return PlainTextResponse("no screenshot", status_code=404)
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})

    @guarded(api=True)
    async def screenshot_request(request: Request, user: User) -> Response:
        pid = panel_id(request)
        try:
            await run_in_threadpool(bridge.request_screenshot, pid)
        except (ValueError, RuntimeError, OSError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=502)
        return JSONResponse({"requested": pid, "at": time.time()}, status_code=202)

    @guarded(api=True)
    async def api_panel(request: Request, user: User) -> Response:
        row = fleet.row(panel_id(request))
        if row is None:
            return JSONResponse({"error": "unknown panel"}, status_code=404)
        return JSONResponse(row)

    @guarded(api=True)
    async def api_history(request: Request, user: User) -> Response:
        pid = panel_id(request)
        span = request.query_params.get("span", "24h")
        if span not in SPANS:
            return JSONResponse({"error": f"span: one of {', '.join(SPANS)}"}, status_code=400)
        if history is None:
            return JSONResponse({"error": "no history"}, status_code=404)
        data = await run_in_threadpool(history.series, pid, span)
        return JSONResponse(data)

    # -- alerts
    def alert_form_values(form: FormData) -> dict[str, Any]:
        scope = str(form.get("scope") or "all")
        return {"level": str(form.get("level") or ""), "title": str(form.get("title") or "").strip(),
                "body": str(form.get("body") or "").strip(), "scope": scope if scope in ("all", "groups", "panels")
                else "all",
                "groups": _listish([str(v) for v in form.getlist("groups")]),
                "panels": _listish([str(v) for v in form.getlist("panels")]),
                "minutes": str(form.get("minutes") or "").strip(), "alert_id": str(form.get("alert_id") or "")}

    def alert_problems(v: dict[str, Any], lang: str) -> list[str]:
        problems = []
        if v["level"] not in LEVELS or not v["title"]:
            problems.append(i18n.translate(lang, "alerts.missing"))
        if v["minutes"]:
            try:
                if float(v["minutes"]) <= 0:
                    raise ValueError
            except ValueError:
                problems.append(i18n.translate(lang, "alerts.minutes") + ": > 0")
        if v["scope"] == "groups" and not v["groups"]:
            problems.append(i18n.translate(lang, "alerts.reach_none"))
        if v["scope"] == "panels" and not v["panels"]:
            problems.append(i18n.translate(lang, "alerts.reach_none"))
        return problems

    def targets(v: dict[str, Any]) -> tuple[list[str], list[str], bool]:
        if v["scope"] == "all":
            return [], [], True
        if v["scope"] == "groups":
            return [], list(v["groups"]), False
        return list(v["panels"]), [], False

    def alerts_page(request: Request, user: User, values: dict[str, Any] | None = None,
                    errors: list[str] | None = None, status: int = 200) -> Response:
        return page(request, "alerts.html", status=status, reports=fleet.alert_reports(), groups=fleet.groups(),
                    panels=[r["panel"] for r in fleet.rows()], levels=LEVELS,
                    v=values or {"level": "critical", "title": "", "body": "", "scope": "all", "groups": [],
                                 "panels": [], "minutes": ""},
                    errors=errors or [])

    @guarded()
    async def alerts(request: Request, user: User) -> Response:
        return alerts_page(request, user)

    @guarded(operator=True)
    async def alert_edit(request: Request, user: User) -> Response:
        """"Change" on the confirmation: the form again, filled in."""
        return alerts_page(request, user, alert_form_values(await form_of(request)))

    @guarded(operator=True)
    async def alert_confirm(request: Request, user: User) -> Response:
        v = alert_form_values(await form_of(request))
        problems = alert_problems(v, lang_of(request))
        if problems:
            return alerts_page(request, user, v, problems, status=400)
        panels, groups, everyone = targets(v)
        reach = fleet.reach(panels, groups, everyone)
        from .bridge import new_alert_id

        v["alert_id"] = new_alert_id(v["title"])  # fixed here: a second click on "send" updates, never duplicates
        return page(request, "alert_confirm.html", v=v, reach=reach)

    @guarded(operator=True)
    async def alert_send(request: Request, user: User) -> Response:
        v = alert_form_values(await form_of(request))
        lang = lang_of(request)
        problems = alert_problems(v, lang)
        if not ALERT_RE.match(v["alert_id"]):
            problems.append("alert id")
        if problems:
            return alerts_page(request, user, v, problems, status=400)
        panels, groups, everyone = targets(v)
        try:
            report = await run_in_threadpool(
                lambda: bridge.send_alert(alert_id=v["alert_id"], level=v["level"], title=v["title"],
                                          body=v["body"] or None,
                                          minutes=float(v["minutes"]) if v["minutes"] else None,
                                          panels=panels, groups=groups, everyone=everyone, user=user.name))
        except ValidationError as exc:
            return alerts_page(request, user, v, [i18n.translate(lang, "alerts.error")] + exc.errors, status=400)
        except (ValueError, RuntimeError, OSError) as exc:
            return alerts_page(request, user, v, [i18n.translate(lang, "alerts.error"), str(exc)], status=502)
        log.info("console: %s sent alert %s (%s) to %d panels", user.name, report["id"], v["level"],
                 report.get("total", 0))
        return RedirectResponse(f"/alerts/{quote(report['id'])}", status_code=303)

    def alert_id_of(request: Request) -> str:
        aid = str(request.path_params["alert"])
        if not ALERT_RE.match(aid):
            raise Forbidden("not_found", 404)
        return aid

    @guarded()
    async def alert_page(request: Request, user: User) -> Response:
        report = fleet.alert_report(alert_id_of(request))
        if report is None:
            return page(request, "error.html", status=404, message=i18n.translate(lang_of(request), "not_found"))
        return page(request, "alert.html", a=report)

    @guarded(api=True)
    async def api_alert(request: Request, user: User) -> Response:
        report = fleet.alert_report(alert_id_of(request))
        if report is None:
            return JSONResponse({"error": "unknown alert"}, status_code=404)
        return JSONResponse(report)

    @guarded(operator=True)
    async def alert_cancel(request: Request, user: User) -> Response:
        aid = alert_id_of(request)
        try:
            await run_in_threadpool(bridge.cancel_alert, aid, user.name)
        except (ValueError, RuntimeError, OSError) as exc:
            return page(request, "error.html", status=502, message=str(exc))
        log.info("console: %s cancelled alert %s", user.name, aid)
        return RedirectResponse(f"/alerts/{quote(aid)}", status_code=303)

    # -- playlists
    def playlists_page(request: Request, errors: list[str] | None = None, status: int = 200) -> Response:
        return page(request, "playlists.html", status=status, reports=fleet.push_reports(), errors=errors or [],
                    groups=fleet.groups(), panels=[r["panel"] for r in fleet.rows()])

    @guarded()
    async def playlists(request: Request, user: User) -> Response:
        return playlists_page(request)

    def drop_old_staged() -> None:
        now = time.monotonic()
        for key in [k for k, s in staged.items() if now - s.created > STAGED_TTL_S]:
            del staged[key]
        while len(staged) >= STAGED_MAX:
            staged.popitem(last=False)

    @guarded(operator=True)
    async def playlist_preview(request: Request, user: User) -> Response:
        form = await form_of(request)
        lang = lang_of(request)
        upload = form.get("playlist")
        if not isinstance(upload, UploadFile) or not upload.filename:
            return playlists_page(request, [i18n.translate(lang, "playlists.file")], status=400)
        raw = await upload.read(MAX_PLAYLIST_FILE + 1)
        files: dict[str, bytes] = {}
        for item in form.getlist("images"):
            if isinstance(item, UploadFile) and item.filename:
                files[Path(item.filename).name] = await item.read(max_asset + 1)
        size = str(form.get("size") or "128x64")
        try:
            data, preview, title, slides = await run_in_threadpool(
                _prepare_preview, upload.filename, raw, files, size, max_asset, max_message)
        except ValidationError as exc:
            return playlists_page(request, [i18n.translate(lang, "playlists.error")] + exc.errors, status=400)
        drop_old_staged()
        token = secrets.token_urlsafe(16)
        staged[token] = Staged(data, files, preview, user.name, title, slides)
        return page(request, "playlist_preview.html", token=token, title=title, slides=slides,
                    has_preview=preview is not None, groups=fleet.groups(),
                    panels=[r["panel"] for r in fleet.rows()])

    @guarded()
    async def staged_png(request: Request, user: User) -> Response:
        s = staged.get(str(request.path_params["token"]))
        if s is None or s.preview is None:
            return PlainTextResponse("not found", status_code=404)
        return Response(s.preview, media_type="image/png", headers={"Cache-Control": "no-store"})

    @guarded(operator=True)
    async def playlist_push(request: Request, user: User) -> Response:
        form = await form_of(request)
        lang = lang_of(request)
        s = staged.get(str(form.get("token") or ""))
        if s is None:
            return playlists_page(request, [i18n.translate(lang, "not_found")], status=400)
        scope = str(form.get("scope") or "groups")
        groups = _listish([str(v) for v in form.getlist("groups")]) if scope == "groups" else []
        panels = _listish([str(v) for v in form.getlist("panels")]) if scope == "panels" else []
        if not groups and not panels:
            return playlists_page(request, [i18n.translate(lang, "alerts.reach_none")], status=400)
        try:
            report = await run_in_threadpool(
                lambda: bridge.push_playlist(s.data, s.files, panels=panels, groups=groups, user=user.name))
        except ValidationError as exc:
            return playlists_page(request, [i18n.translate(lang, "playlists.error")] + exc.errors, status=400)
        except (ValueError, RuntimeError, OSError) as exc:
            return playlists_page(request, [i18n.translate(lang, "playlists.error"), str(exc)], status=502)
        staged.pop(str(form.get("token")), None)
        return RedirectResponse(f"/playlists/{quote(report['key'], safe='@')}", status_code=303)

    @guarded()
    async def push_page(request: Request, user: User) -> Response:
        report = fleet.push_report(str(request.path_params["key"]))
        if report is None:
            return page(request, "error.html", status=404, message=i18n.translate(lang_of(request), "not_found"))
        return page(request, "push.html", p=report)

    # -- machines
    async def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "broker_connected": bool(getattr(bridge, "connected", False)),
                             "panels": len(fleet.rows())})

    async def metrics_endpoint(request: Request) -> Response:
        if metrics is None:
            return PlainTextResponse("metrics are not available (player/console/metrics.py)", status_code=404)
        from .metrics import authorized, read_token

        token_file = getattr(settings, "metrics_token_file", None)
        token = read_token(Path(token_file).expanduser()) if token_file else None
        if not authorized(request.headers.get("authorization"), token):
            return PlainTextResponse("bearer token required", status_code=401,
                                     headers={"WWW-Authenticate": "Bearer"})
        body, content_type = await run_in_threadpool(metrics.render)
        return Response(body, media_type=content_type)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.start()
        try:
            yield
        finally:
            hub.stop()

    routes = [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", fleet_page),
        Route("/panels/{panel}", panel_page),
        Route("/panels/{panel}/screenshot.png", screenshot_png),
        Route("/panels/{panel}/screenshot", screenshot_request, methods=["POST"]),
        Route("/alerts", alerts, methods=["GET"]),
        Route("/alerts", alert_edit, methods=["POST"]),
        Route("/alerts/confirm", alert_confirm, methods=["POST"]),
        Route("/alerts/send", alert_send, methods=["POST"]),
        Route("/alerts/{alert}", alert_page),
        Route("/alerts/{alert}/cancel", alert_cancel, methods=["POST"]),
        Route("/playlists", playlists),
        Route("/playlists/preview", playlist_preview, methods=["POST"]),
        Route("/playlists/push", playlist_push, methods=["POST"]),
        Route("/playlists/staged/{token}.png", staged_png),
        Route("/playlists/{key}", push_page),
        Route("/api/fleet", api_fleet),
        Route("/api/notices", api_notices),
        Route("/api/stream", api_stream),
        Route("/api/panels/{panel}", api_panel),
        Route("/api/panels/{panel}/history", api_history),
        Route("/api/alerts/{alert}", api_alert),
        Route("/healthz", healthz),
        Route("/metrics", metrics_endpoint),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    middleware = [Middleware(SessionMiddleware, secret_key=secret, session_cookie="panelctl_console",
                             max_age=SESSION_MAX_AGE, same_site="strict",
                             https_only=bool(getattr(settings, "secure_cookies", False)))]
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan, max_body_size=MAX_BODY,
                    exception_handlers={Forbidden: on_forbidden, LoginNeeded: on_login_needed})
    app.state.hub = hub
    return app


def _prepare_preview(filename: str, raw: bytes, files: dict[str, bytes], size: str, max_asset: int,
                     max_message: int) -> tuple[dict[str, Any], bytes | None, str, int]:
    """Validate an uploaded playlist with its pictures and draw its contact sheet (PNG)."""
    import io
    import tempfile

    import yaml

    from ..ctl.push import prepare_playlist

    if len(raw) > MAX_PLAYLIST_FILE:
        raise ValidationError([f"{filename}: larger than {MAX_PLAYLIST_FILE // 1024} KiB"], "playlist file")
    try:
        text = raw.decode("utf-8")
        data = json.loads(text) if filename.lower().endswith(".json") else yaml.safe_load(text)
    except UnicodeDecodeError as exc:
        raise ValidationError([f"{filename} is not UTF-8 text (byte {exc.start})"], "playlist file") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise ValidationError([f"{filename} is not valid JSON or YAML: {exc}"], "playlist file") from None
    if not isinstance(data, dict):
        raise ValidationError([f"{filename}: expected a playlist (a mapping with id, slides...)"], "playlist file")
    if data.get("version") is None:  # as panelctl push: now in seconds, fixed here so that the push matches the preview
        data["version"] = int(time.time())
    for name, content in files.items():
        if len(content) > max_asset:
            raise ValidationError([f"{name}: larger than {max_asset // 1024} KiB (max_asset_kb)"], "playlist file")
    m = re.match(r"^(\d{1,4})x(\d{1,4})$", size)
    panel_size = (int(m.group(1)), int(m.group(2))) if m else (128, 64)
    with tempfile.TemporaryDirectory(prefix="panelctl-console-") as tmp:
        base = Path(tmp)
        for name, content in files.items():
            (base / name).write_bytes(content)
        prepared = prepare_playlist(data, base, max_asset_bytes=max_asset, max_message_bytes=max_message)
        playlist = prepared.playlist
        title = f"{playlist.id} v{playlist.version}"
        png: bytes | None = None
        try:
            from ..ctl.preview import Images, Panel, contact_sheet, file_assets, preview_playlist

            panel = Panel(panel_size, led=max(panel_size) <= 256)
            images = Images([base], file_assets(data, base))
            scratch = base / "scratch"
            scratch.mkdir()
            with _preview_lock:
                rows = preview_playlist(playlist, panel, images.path_of, lambda text: None, scratch)
                sheet = contact_sheet(rows, panel, f"{title}, {panel_size[0]}x{panel_size[1]}")
            out = io.BytesIO()
            sheet.save(out, "PNG")
            png = out.getvalue()
        except ValidationError:
            raise
        except Exception:  # noqa: BLE001 - a preview that cannot be drawn does not stop the push
            log.exception("console: playlist preview failed")
    return data, png, title, len(playlist.slides)
