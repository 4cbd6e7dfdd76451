"""The console's words in French and English.

Every visible string of the pages goes through :func:`translate` (``t("key")`` in the
templates). The language is ``?lang=fr|en`` (then kept in the session), else the
browser's ``Accept-Language``, else the console's ``notices.language`` setting.

Example::

    translate("fr", "state.offline")               # 'hors ligne'
    pick_language("en-GB,en;q=0.8,fr;q=0.5", "fr")   # 'en'
"""

from __future__ import annotations

LANGUAGES = ("fr", "en")

# key: (English, French)
STRINGS: dict[str, tuple[str, str]] = {
    "app.title": ("Panel console", "Console des panneaux"),
    "nav.fleet": ("Fleet", "Parc"),
    "nav.alerts": ("Alerts", "Alertes"),
    "nav.playlists": ("Playlists", "Programmes"),
    "nav.logout": ("Log out", "Se déconnecter"),
    "nav.language": ("Français", "English"),
    "nav.user": ("Signed in as {name} ({role})", "Connecté : {name} ({role})"),
    "role.viewer": ("viewer", "lecture"),
    "role.operator": ("operator", "opérateur"),
    "login.title": ("Sign in", "Connexion"),
    "login.username": ("User name", "Nom d'utilisateur"),
    "login.password": ("Password", "Mot de passe"),
    "login.submit": ("Sign in", "Se connecter"),
    "login.failed": ("Wrong user name or password.", "Nom d'utilisateur ou mot de passe incorrect."),
    "login.no_users": ("No user yet: create one on the server with `panelctl console user add NAME --role operator`.",
                       "Aucun utilisateur : créez-en un sur le serveur avec "
                       "`panelctl console user add NOM --role operator`."),
    "state.online": ("online", "en ligne"),
    "state.stale": ("stale", "muet"),
    "state.offline": ("offline", "hors ligne"),
    "state.asleep": ("asleep", "en veille"),
    "state.unknown": ("unknown", "inconnu"),
    "fleet.title": ("Fleet", "Parc de panneaux"),
    "fleet.count": ("{n} panels", "{n} panneaux"),
    "fleet.empty": ("No panel has reported yet.", "Aucun panneau ne s'est encore manifesté."),
    "fleet.filter": ("Filter", "Filtrer"),
    "fleet.filter_hint": ("panel, slide, version…", "panneau, diapositive, version…"),
    "fleet.group": ("Group", "Groupe"),
    "fleet.all_groups": ("All groups", "Tous les groupes"),
    "fleet.thumbnails": ("Screens", "Écrans"),
    "fleet.no_screenshot": ("no screenshot yet", "pas encore de capture"),
    "fleet.live": ("live", "en direct"),
    "fleet.noscript": ("This page needs JavaScript to show the fleet (or read /api/fleet).",
                       "Cette page a besoin de JavaScript pour montrer le parc (ou lisez /api/fleet)."),
    "fleet.disconnected": ("connection lost, retrying…", "connexion perdue, nouvel essai…"),
    "fleet.broker_down": ("The console has no connection to the broker: the states below may be old.",
                          "La console n'est pas connectée au broker : les états ci-dessous peuvent être anciens."),
    "col.panel": ("Panel", "Panneau"),
    "col.state": ("State", "État"),
    "col.heartbeat": ("Last heartbeat", "Dernier signe de vie"),
    "col.showing": ("Shows", "Affiche"),
    "col.firmware": ("Version", "Version"),
    "col.brightness": ("Brightness", "Luminosité"),
    "col.ambient": ("Ambient light", "Lumière ambiante"),
    "col.temperature": ("Temperature", "Température"),
    "col.errors": ("Errors", "Erreurs"),
    "col.door": ("Door", "Porte"),
    "col.power": ("Power", "Alimentation"),
    "col.groups": ("Groups", "Groupes"),
    "ago": ("{age} ago", "il y a {age}"),
    "never": ("never", "jamais"),
    "door.open": ("open", "ouverte"),
    "door.closed": ("closed", "fermée"),
    "power.low": ("under-voltage", "sous-tension"),
    "power.ok": ("ok", "ok"),
    "showing.alert": ("alert", "alerte"),
    "showing.slide": ("slide", "diapositive"),
    "showing.idle": ("idle screen", "écran d'attente"),
    "showing.unknown": ("—", "—"),
    "notices.title": ("Notices", "Avis"),
    "panel.title": ("Panel {panel}", "Panneau {panel}"),
    "panel.unknown": ("No panel {panel} is known to the console.", "La console ne connaît pas de panneau {panel}."),
    "panel.screenshot": ("Latest screenshot", "Dernière capture"),
    "panel.screenshot_at": ("taken {when}", "prise {when}"),
    "panel.refresh": ("Take a new screenshot", "Nouvelle capture"),
    "panel.refresh_sent": ("Asked; the picture appears when the panel answers.",
                           "Demandée ; l'image apparaît dès que le panneau répond."),
    "panel.heartbeat": ("Heartbeat", "Signe de vie"),
    "panel.field": ("Field", "Champ"),
    "panel.value": ("Value", "Valeur"),
    "panel.meaning": ("Meaning", "Signification"),
    "panel.history": ("History", "Historique"),
    "panel.no_data": ("no data over this span", "pas de données sur cette période"),
    "chart.temperature": ("CPU temperature (°C), threshold {t} °C", "Température CPU (°C), seuil {t} °C"),
    "chart.brightness": ("Brightness (%) and ambient light (%)", "Luminosité (%) et lumière ambiante (%)"),
    "chart.states": ("Online / offline", "En ligne / hors ligne"),
    "chart.restarts": ("Restarts", "Redémarrages"),
    "chart.reconnects": ("Broker reconnections", "Reconnexions au broker"),
    "chart.rss": ("Memory (RSS, MiB)", "Mémoire (RSS, Mio)"),
    "chart.disk": ("Free disk (MiB)", "Disque libre (Mio)"),
    "chart.brightness_label": ("brightness", "luminosité"),
    "chart.ambient_label": ("ambient", "ambiante"),
    "span.24h": ("24 h", "24 h"),
    "span.7d": ("7 days", "7 jours"),
    "span.30d": ("30 days", "30 jours"),
    "alerts.title": ("Alerts", "Alertes"),
    "alerts.new": ("Send an alert", "Envoyer une alerte"),
    "alerts.level": ("Level", "Niveau"),
    "level.critical": ("critical", "critique"),
    "level.warning": ("warning", "avertissement"),
    "level.info": ("information", "information"),
    "alerts.alert_title": ("Title", "Titre"),
    "alerts.body": ("Text", "Texte"),
    "alerts.scope": ("Panels", "Panneaux"),
    "scope.all": ("every panel", "tous les panneaux"),
    "scope.groups": ("these groups", "ces groupes"),
    "scope.panels": ("these panels", "ces panneaux"),
    "alerts.minutes": ("Duration (minutes, empty: until cancelled)",
                       "Durée (minutes, vide : jusqu'à annulation)"),
    "alerts.next": ("Next: check", "Suivant : vérifier"),
    "alerts.confirm_title": ("Confirm the alert", "Confirmer l'alerte"),
    "alerts.reach": ("This alert will reach {n} panels:", "Cette alerte atteindra {n} panneaux :"),
    "alerts.reach_none": ("No known panel is targeted: check the groups or panels.",
                          "Aucun panneau connu n'est visé : vérifiez les groupes ou les panneaux."),
    "alerts.send": ("Send the alert", "Envoyer l'alerte"),
    "alerts.back": ("Change", "Modifier"),
    "alerts.sent": ("Sent alerts", "Alertes envoyées"),
    "alerts.none": ("No alert sent from this console yet.", "Aucune alerte envoyée depuis cette console."),
    "alerts.reached": ("Reached", "Atteints"),
    "alerts.reached_text": ("reached {n} of {m} panels", "{n} panneaux atteints sur {m}"),
    "alerts.sent_by": ("sent by {user}, {when}", "envoyée par {user}, {when}"),
    "alerts.cancelled": ("cancelled {when}", "annulée {when}"),
    "alerts.cancel": ("Cancel this alert", "Annuler cette alerte"),
    "alerts.cancel_confirm": ("Cancel the alert on every panel?", "Annuler l'alerte sur tous les panneaux ?"),
    "alerts.expires": ("ends {when}", "se termine {when}"),
    "alerts.viewer": ("Your role (viewer) does not allow sending alerts.",
                      "Votre rôle (lecture) ne permet pas d'envoyer des alertes."),
    "alerts.error": ("The alert was not sent:", "L'alerte n'a pas été envoyée :"),
    "alerts.missing": ("Give a level and a title.", "Indiquez un niveau et un titre."),
    "alerts.groups_hint": ("groups, separated by commas", "groupes, séparés par des virgules"),
    "alerts.panels_hint": ("panel ids, separated by commas", "identifiants, séparés par des virgules"),
    "status.waiting": ("waiting", "en attente"),
    "status.displayed": ("displayed", "affichée"),
    "status.rejected": ("rejected", "refusée"),
    "status.ended": ("ended", "terminée"),
    "status.applied": ("applied", "appliqué"),
    "playlists.title": ("Playlists", "Programmes"),
    "playlists.upload": ("Push a playlist", "Envoyer un programme"),
    "playlists.file": ("Playlist file (JSON or YAML)", "Fichier du programme (JSON ou YAML)"),
    "playlists.images": ("Its image files", "Ses fichiers d'images"),
    "playlists.preview": ("Preview", "Aperçu"),
    "playlists.preview_size": ("Panel size", "Taille du panneau"),
    "playlists.push": ("Push to the panels", "Envoyer aux panneaux"),
    "playlists.pushes": ("Pushed playlists", "Programmes envoyés"),
    "playlists.none": ("No playlist pushed from this console yet.", "Aucun programme envoyé depuis cette console."),
    "playlists.applied_text": ("applied: {n} / {m} panels", "appliqué : {n} / {m} panneaux"),
    "playlists.sent_by": ("pushed by {user}, {when}", "envoyé par {user}, {when}"),
    "playlists.error": ("The playlist was not accepted:", "Le programme n'a pas été accepté :"),
    "playlists.viewer": ("Your role (viewer) does not allow pushing playlists.",
                         "Votre rôle (lecture) ne permet pas d'envoyer des programmes."),
    "playlists.slides": ("{n} slides", "{n} diapositives"),
    "forbidden": ("Not allowed.", "Non autorisé."),
    "csrf": ("The form has expired or did not come from this console: reload the page and try again.",
             "Le formulaire a expiré ou ne vient pas de cette console : rechargez la page et recommencez."),
    "not_found": ("Not found.", "Introuvable."),
    "yes": ("yes", "oui"),
    "no": ("no", "non"),
    "none": ("—", "—"),
}

# The heartbeat fields shown on the panel page, explained (docs/protocol.md, Heartbeat).
FIELDS: dict[str, tuple[str, str]] = {
    "ts": ("when the panel built this heartbeat (by its own clock)",
           "quand le panneau a construit ce signe de vie (selon son horloge)"),
    "firmware": ("the panel-player version it runs", "la version de panel-player qu'il exécute"),
    "uptime_s": ("seconds since the player started", "secondes depuis le démarrage du lecteur"),
    "playlist": ("the playlist on screen (id and version)", "le programme à l'écran (identifiant et version)"),
    "slide": ("the slide on screen; empty on the idle screen", "la diapositive à l'écran ; vide sur l'écran d'attente"),
    "alerts": ("the alerts it shows now", "les alertes qu'il affiche maintenant"),
    "brightness": ("current brightness, percent", "luminosité actuelle, en pour cent"),
    "ambient": ("ambient light from 0 to 1; empty without a light sensor",
                "lumière ambiante de 0 à 1 ; vide sans capteur de lumière"),
    "cpu_temp_c": ("processor temperature, °C (brightness is lowered above 75 °C)",
                   "température du processeur, °C (la luminosité baisse au-dessus de 75 °C)"),
    "fps": ("frames sent to the screen per second over the last 5 s (0 for a still picture)",
            "images envoyées à l'écran par seconde sur les 5 dernières s (0 pour une image fixe)"),
    "rss_mb": ("memory used by the player, MiB", "mémoire utilisée par le lecteur, Mio"),
    "disk_free_mb": ("free space where it stores its content, MiB",
                     "espace libre là où il garde son contenu, Mio"),
    "mqtt_reconnects": ("reconnections to the broker since it started",
                        "reconnexions au broker depuis le démarrage"),
    "door_open": ("cabinet door switch; empty without one", "contact de porte du caisson ; vide sans contact"),
    "clock_synced": ("the clock is synchronised by NTP", "l'horloge est synchronisée par NTP"),
    "errors": ("recent errors (each kept 24 h after it last happened), with their count",
               "erreurs récentes (gardées 24 h après leur dernière apparition), avec leur nombre"),
    "under_voltage": ("the power supply is too weak now (Raspberry Pi)",
                      "l'alimentation est trop faible en ce moment (Raspberry Pi)"),
    "throttled": ("the processor is slowed down now (heat or power)",
                  "le processeur est ralenti en ce moment (chaleur ou alimentation)"),
    "display": ("the screen output, whether it works, and its status",
                "la sortie d'affichage, si elle fonctionne, et son état"),
    "groups": ("the panel's groups, in precedence order", "les groupes du panneau, par ordre de priorité"),
    "sensor_faults": ("sensors that failed at the last reading", "capteurs en panne à la dernière lecture"),
    "brightness_source": ("where brightness comes from: sensor, schedule or override",
                          "d'où vient la luminosité : capteur, horaire ou forçage"),
    "brightness_floor": ("minimum brightness while a serious alert is shown",
                         "luminosité minimale pendant une alerte grave"),
    "brightness_derated": ("brightness lowered because of heat", "luminosité réduite à cause de la chaleur"),
    "screen": ("on, asleep (sleep hours) or woken (on during the sleep hours)",
               "allumé (on), en veille (asleep) ou réveillé (woken) pendant les heures de veille"),
    "update": ("the last firmware update and its outcome", "la dernière mise à jour du logiciel et son résultat"),
    "alerts_unconfirmed": ("alerts kept although the broker lost them", "alertes gardées bien que le broker les ait perdues"),
}


def pick_language(accept: str | None, default: str) -> str:
    """The first of ``fr``/``en`` in an ``Accept-Language`` header (by q), else ``default``."""
    best: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept or "").split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            key, _, value = p.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        lang = tag.strip().lower()[:2]
        if lang in LANGUAGES and q > 0:
            best.append((-q, i, lang))
    if best:
        return sorted(best)[0][2]
    return default if default in LANGUAGES else "fr"


def translate(lang: str, key: str, **values: object) -> str:
    """The string ``key`` in ``lang`` with ``{name}`` values filled in; an unknown key is shown as is."""
    pair = STRINGS.get(key)
    if pair is None:
        return key
    text = pair[1] if lang == "fr" else pair[0]
    return text.format(**values) if values else text


def field_meaning(lang: str, field: str) -> str:
    pair = FIELDS.get(field)
    if pair is None:
        return ""
    return pair[1] if lang == "fr" else pair[0]


def client_strings(lang: str) -> dict[str, str]:
    """What the page's JavaScript needs (states, statuses, ages...)."""
    keys = [k for k in STRINGS if k.split(".")[0] in ("state", "status", "door", "power", "showing", "fleet", "panel")]
    keys += ["chart.ambient_label", "ago", "never", "yes", "no", "none", "alerts.reached_text", "playlists.applied_text"]
    return {k: translate(lang, k) for k in keys}
