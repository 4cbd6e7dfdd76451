"""Operations on the main loop: the MQTT link, commands, heartbeat, brightness, systemd.

Commands (CONTRACT §6) each answer with ``command.done`` or ``command.failed``;
none runs a shell or a path given in the message. The heartbeat (CONTRACT §8)
goes out every ``heartbeat.interval`` seconds and at once on a notable change;
a figure the panel cannot read is ``null``.
"""

from __future__ import annotations

import io
import logging
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, PanelError
from .heartbeat import ErrorLog, build_heartbeat, notable_change
from .hw.health import Health
from .hw.notify import Notifier, WatchdogPacer, watchdog_interval

if TYPE_CHECKING:
    from .app import Player
    from .net.protocol import Command

log = logging.getLogger("panel-player")

BRIGHTNESS_RECHECK_S = 60.0  # the night cap and the fallback schedule change with the time of day


class OpsPart:
    def __init__(self, player: Player) -> None:
        self.p = player
        cfg = player.cfg
        self.errors = ErrorLog(max_items=20)
        self.health = Health(cfg.state_dir, cpu_temp_file=cfg.sensors.cpu_temp_file or None)
        self.notifier = Notifier()
        self.pacer = WatchdogPacer(watchdog_interval())
        self.ready_sent = False
        self.hb_due: float = 0.0
        self.hb_last: dict[str, Any] | None = None
        self.hb_reason: str | None = None
        self.readings: Any = None
        self.sensors: Any = None
        self.sampler: Any = None
        self.brightness_ctl: Any = None
        self.actuator: Any = None
        self.brightness: int | None = None
        self.brightness_due: float | None = None
        self.identify_view: Any = None
        self.identify_until: float | None = None
        self.alert_view: Any = None
        self.connected = False
        self.link_status = "disabled" if not cfg.mqtt.enabled else "connecting"
        from .update import UpdateAgent

        self.update = UpdateAgent(player)

    # -- start / stop ------------------------------------------------------------
    def start(self) -> None:
        """After the first frame: tell systemd, start the network and the sensors."""
        self.notifier.ready(f"showing {self.p.content.playlist.id if self.p.content.playlist else 'idle screen'}")
        self.ready_sent = True
        self.start_sensors()
        self.start_link()
        self.update.start()
        self.hb_due = time.monotonic()

    def start_link(self) -> None:
        m = self.p.cfg.mqtt
        if not m.enabled:
            return
        from .net.link import LinkSettings, MqttLink

        settings = LinkSettings(host=m.host, port=m.port, prefix=m.prefix, username=m.username,
                                password_file=m.password_file, tls=m.tls, keepalive=m.keepalive,
                                protocol=m.protocol, session_expiry=m.session_expiry,
                                max_message_bytes=m.max_message_kb * 1024, max_asset_bytes=m.max_asset_kb * 1024)
        try:
            self.p.link = MqttLink(settings, self.p.cfg.panel.id, self.p.cfg.panel.groups, self.p.inbox)
            self.p.alerts.tell_link()  # the first SUBSCRIBE names the alerts restored from disk
            self.p.link.start()
            for event in self.p.early_events:
                self.p.link.publish_event(event)  # queued by the link until it is connected
            self.p.early_events.clear()
        except (ConfigError, OSError) as exc:
            self.p.link = None
            self.link_status = f"not started: {exc}"
            self.p.report_error(f"MQTT link: {exc}", publish=False)

    def start_brightness(self) -> None:
        """Before the first frame, so that it is drawn at the right brightness (a panel
        starting at night does not flash at full power, an alert restored from disk is
        shown at its floor)."""
        from .hw.actuators import open_actuator
        from .hw.brightness import BrightnessController

        cfg = self.p.cfg
        self.brightness_ctl = BrightnessController(cfg.brightness)
        try:
            self.actuator = open_actuator(cfg.brightness.actuator, set_dim=self.p.renderer.set_dim,
                                          set_matrix_brightness=self.p.output.set_brightness)
        except (PanelError, OSError) as exc:
            self.p.report_error(f"brightness actuator: {exc}", publish=False)
            self.actuator = None
        override = self.p.store.load_json("brightness-override")
        if isinstance(override, dict) and isinstance(override.get("value"), int):
            log.info("manual brightness override does not survive a restart; ignoring the stored one")
            self.p.store.delete_json("brightness-override")
        self.update_brightness(time.monotonic())

    def start_sensors(self) -> None:
        from .hw.sampler import Sampler
        from .hw.sensors import open_sensors

        cfg = self.p.cfg
        try:
            self.sensors = open_sensors(cfg.sensors)
            for fault in getattr(self.sensors, "open_faults", ()):
                self.p.report_error(f"sensor: {fault}", publish=False)
            self.sampler = Sampler(self.sensors, cfg.sensors, self.p.inbox)
            self.sampler.start()
        except (PanelError, OSError) as exc:
            self.p.report_error(f"sensors: {exc}", publish=False)

    def display_changed(self) -> None:
        """A new renderer and output: re-attach the overlays and the dimmer, tell the crews."""
        self.alert_view = None
        if self.identify_view is not None:
            self.refresh_overlay()
        if self.brightness is not None and self.actuator is not None:
            from .hw.actuators import open_actuator

            self.actuator.close()
            self.actuator = open_actuator(self.p.cfg.brightness.actuator, set_dim=self.p.renderer.set_dim,
                                          set_matrix_brightness=self.p.output.set_brightness)
            self.actuator.set(self.brightness)
            self.actuator.power(not self.p.screen.asleep)
        self.notable("display back")

    def close(self) -> None:
        self.notifier.stopping()
        if self.sampler is not None:
            self.sampler.stop()
        if self.sensors is not None:
            self.sensors.close()
        if self.actuator is not None:
            self.actuator.close()
        if self.p.link is not None:
            self.p.link.stop()
        self.notifier.close()

    # -- overlays: alerts over identify over the playlist ---------------------------
    def overlay_changed(self, alert_view: Any) -> None:
        self.alert_view = alert_view
        self.refresh_overlay()

    def refresh_overlay(self) -> None:
        if self.alert_view is not None:
            self.p.renderer.set_overlay(self.alert_view)
        elif self.identify_view is not None:
            self.p.renderer.set_overlay(self.identify_view)
        else:
            self.p.renderer.set_overlay(None)

    # -- messages --------------------------------------------------------------------
    def handle(self, msg: object, now: float) -> bool:
        from .hw.sampler import SensorReadings
        from .net.protocol import Inbound, LinkError, LinkState, Rejected, event_command_failed, event_error

        if isinstance(msg, Inbound) and msg.route.kind == "cmd":
            self.command(msg.payload, now)
        elif isinstance(msg, LinkState):
            self.link_state(msg.connected, msg.reason, msg.connection)
        elif isinstance(msg, LinkError):
            self.p.report_error(f"MQTT: {msg.reason}")
        elif isinstance(msg, Rejected) and getattr(msg.subject, "kind", None) == "cmd":
            self.p.event(event_command_failed(None, None, f"{msg.topic}: {msg.reason}"))
        elif isinstance(msg, Rejected):
            self.p.event(event_error(f"message refused on {msg.topic}: {msg.reason}"))
        elif isinstance(msg, SensorReadings):
            self.readings = msg
            for fault in msg.faults:
                self.p.report_error(f"sensor {fault}", publish=False)
            self.update_brightness(now)
            self.check_notable()
        else:
            return False
        return True

    def link_state(self, connected: bool, reason: str, connection: int = 0) -> None:
        was = self.connected
        self.connected = connected
        self.link_status = reason
        log.info("MQTT %s", reason)
        if connected and not was:
            self.hb_due = time.monotonic()  # tell the crews at once that we are back
            self.update.progress("connected")
            self.p.alerts.link_connected(time.monotonic(), connection)
        if self.identify_view is not None:
            self.identify_view.update(info=self.panel_info())
            self.refresh_overlay()

    # -- commands (CONTRACT §6) ------------------------------------------------------
    def command(self, payload: bytes, now: float) -> None:
        from .net.protocol import CommandError, event_command_done, event_command_failed, parse_command

        try:
            cmd = parse_command(payload)
        except CommandError as exc:
            self.p.event(event_command_failed(exc.request, exc.cmd, "; ".join(exc.errors)))
            return
        log.info("command %s (%s)", cmd.cmd, cmd.id)
        try:
            failure = getattr(self, f"cmd_{cmd.cmd}")(cmd, now)
        except Exception as exc:  # a command that fails must still answer
            log.exception("command %s failed", cmd.cmd)
            failure = str(exc) or type(exc).__name__
        from .update import LATER

        if failure == LATER:
            return  # answered once done (update: once the bundle is handed to the updater)
        if failure:
            self.p.event(event_command_failed(cmd.id, cmd.cmd, failure))
        else:
            self.p.event(event_command_done(cmd.id, cmd.cmd))

    def cmd_identify(self, cmd: Command, now: float) -> str | None:
        from .render.fonts import screen_style
        from .render.identify import IdentifyView

        seconds = cmd.seconds or 30
        if self.p.screen.asleep or self.p.screen.state == "woken":
            self.p.screen.wake(seconds, now, "identify command")  # the crew must see it
        d = self.p.cfg.display
        font, led = screen_style(self.p.renderer.logical_size, d.font or self.p.layout.font,
                                 ledmatrix=d.output == "ledmatrix", layout_antialias=self.p.layout.antialias)
        self.identify_view = IdentifyView(self.panel_info(), until=now + seconds, font=font,
                                          antialias=d.antialias, led=led, start=now)
        self.identify_until = now + seconds
        self.refresh_overlay()
        return None

    def panel_info(self) -> Any:
        """What the identify screen and the test card say about this panel."""
        from .render.identify import PanelInfo, describe_addresses

        c = self.p.cfg
        return PanelInfo(panel_id=c.panel.id, name=c.panel.name, firmware=self.p.version,
                         addresses=tuple(describe_addresses()),
                         broker=f"{c.mqtt.host}:{c.mqtt.port}" if c.mqtt.enabled else "",
                         connected=self.connected if c.mqtt.enabled else None)

    def cmd_screenshot(self, cmd: Command, now: float) -> str | None:
        import pygame

        if self.p.link is None or not self.p.link.connected:
            return "not connected"
        buf = io.BytesIO()
        pygame.image.save(self.p.renderer.snapshot(), buf, "screenshot.png")
        if not self.p.link.publish_screenshot(buf.getvalue()):
            return "screenshot could not be published"
        return None

    def cmd_brightness(self, cmd: Command, now: float) -> str | None:
        if self.brightness_ctl is None:
            return "no brightness controller"
        self.brightness_ctl.override(cmd.value, cmd.seconds, now)
        self.update_brightness(now)
        return None

    def cmd_wake(self, cmd: Command, now: float) -> str | None:
        self.p.screen.wake(cmd.seconds, now)
        return None

    def cmd_sleep(self, cmd: Command, now: float) -> str | None:
        self.p.screen.sleep(cmd.seconds, now)
        return None

    def cmd_reload(self, cmd: Command, now: float) -> str | None:
        """Re-read the config; apply it in place when only content-side settings changed, else restart."""
        from .app import EXIT_RESTART
        from .config import load_config

        if self.p.cfg.source is None:
            return "this player was not started from a config file"
        try:
            new = load_config(self.p.cfg.source)
        except ConfigError as exc:
            return "config invalid, nothing changed: " + "; ".join(exc.errors)
        self.p.content.reload()
        if new == self.p.cfg:
            return None
        log.info("config changed: restarting to apply it")
        self.p.stop(EXIT_RESTART, "reload with a changed config")
        return None

    def cmd_update(self, cmd: Command, now: float) -> str | None:
        return self.update.command_update(cmd)

    def cmd_rollback(self, cmd: Command, now: float) -> str | None:
        return self.update.command_rollback(cmd)

    def cmd_restart(self, cmd: Command, now: float) -> str | None:
        from .app import EXIT_RESTART

        self.p.stop(EXIT_RESTART, f"restart command {cmd.id}")
        return None

    # -- brightness ------------------------------------------------------------------
    def update_brightness(self, now: float) -> None:
        if self.brightness_ctl is None:
            return
        r = self.readings
        local = datetime.now(timezone.utc).astimezone(self.p.tz)
        ambient = r.ambient if r is not None else None
        # With no light sensor the schedule is the normal mode, not a fault.
        ok = self.p.cfg.sensors.light.type == "none" or bool(r is not None and r.light_ok)
        temp = r.cpu_temp_c if r is not None else None
        value = self.brightness_ctl.update(ambient, now, local, temp, ok, floor=self.p.screen.floor)
        if value != self.brightness and self.actuator is not None:
            try:
                self.actuator.set(value)
            except OSError as exc:
                self.p.report_error(f"brightness actuator: {exc}")
        self.brightness = value
        self.brightness_due = now + BRIGHTNESS_RECHECK_S
        until = self.brightness_ctl.override_until()
        if until is not None and until > now:
            self.brightness_due = min(self.brightness_due, until)

    # -- heartbeat ---------------------------------------------------------------------
    def heartbeat(self, now: float) -> dict[str, Any]:
        p = self.p
        figures = self.health.figures()
        r = self.readings
        playlist = p.content.playlist
        extra: dict[str, Any] = {
            "under_voltage": figures.get("under_voltage"),
            "throttled": figures.get("throttled"),
            "display": {"output": p.cfg.display.output, "healthy": bool(getattr(p.output, "healthy", True)),
                        "status": getattr(p.output, "status", "")},
            "mqtt_connected": self.connected,
            "groups": list(p.cfg.panel.groups),
            "sensor_faults": list(r.faults) if r is not None else [],
            "brightness_source": getattr(self.brightness_ctl, "source", None),
            "brightness_floor": self.p.screen.floor,
            "brightness_derated": getattr(self.brightness_ctl, "derated", None),
            "screen": self.p.screen.state,
            "alerts_unconfirmed": self.p.alerts.unconfirmed_ids(),
            "update": self.update.heartbeat_field(),
        }
        return build_heartbeat(
            panel=p.cfg.panel.id, ts=datetime.now(timezone.utc), firmware=p.version,
            uptime_s=figures["uptime_s"], playlist=playlist.identity() if playlist else None,
            slide=p.content.slide_id, alerts=p.alerts.ids(), brightness=self.brightness,
            ambient=r.ambient if r is not None else None,
            cpu_temp_c=(r.cpu_temp_c if r is not None and r.cpu_temp_c is not None else figures["cpu_temp_c"]),
            fps=p.measured_fps(now), rss_mb=figures["rss_mb"], disk_free_mb=figures["disk_free_mb"],
            mqtt_reconnects=p.link.reconnects if p.link is not None else 0,
            door_open=r.door_open if r is not None else None, clock_synced=figures["clock_synced"],
            errors=self.errors.items(datetime.now(timezone.utc)), **extra,
        )

    def notable(self, reason: str) -> None:
        """Publish the heartbeat at the end of this loop pass."""
        self.hb_reason = reason
        self.hb_due = time.monotonic()

    def check_notable(self) -> None:
        if self.hb_last is None:
            return
        probe = dict(self.hb_last)
        r = self.readings
        if r is not None:
            probe.update(door_open=r.door_open, sensor_faults=list(r.faults), cpu_temp_c=r.cpu_temp_c)
        reason = notable_change(self.hb_last, probe)
        if reason:
            self.notable(reason)

    def publish_heartbeat(self, now: float) -> None:
        hb = self.heartbeat(now)
        self.hb_last = hb
        self.hb_due = now + self.p.cfg.heartbeat.interval
        if self.hb_reason:
            log.info("heartbeat now: %s", self.hb_reason)
            self.hb_reason = None
        # Only once the loop has handled the connection: until then the heartbeat would
        # say mqtt_connected false, and handling the connection sends a fresh one anyway.
        if self.p.link is not None and self.connected:
            if self.p.link.publish_heartbeat(hb):
                self.update.progress("heartbeat")
        self.p.alerts.refresh_stored()  # keeps the stored ttl remaining close to the truth

    # -- time ------------------------------------------------------------------------------
    def tick(self, now: float, wall: datetime) -> None:
        if self.identify_until is not None and now >= self.identify_until:
            self.identify_view = None
            self.identify_until = None
            self.refresh_overlay()
        if self.brightness_due is not None and now >= self.brightness_due:
            self.update_brightness(now)
        self.update.tick(now)

    def deadlines(self, now: float, wall: datetime) -> list[float | None]:
        due = [self.identify_until, self.brightness_due, *self.update.deadlines()]
        if self.ready_sent:
            due.append(self.hb_due)
        if self.pacer.enabled:
            due.append(self.pacer.next_due(now))
        return due

    def after_step(self, now: float) -> None:
        """End of a loop pass: the heartbeat when due, then the watchdog (proof the loop turns)."""
        if self.ready_sent and now >= self.hb_due:
            try:
                self.publish_heartbeat(now)
            except Exception as exc:
                log.exception("heartbeat failed")
                self.hb_due = now + self.p.cfg.heartbeat.interval
                self.p.report_error(f"heartbeat: {exc}", publish=False)
        self.pacer.tick(now, self.notifier)
