"""The panel-player web console (``panelctl console``): the fleet at a glance, alerts and
playlists sent from a browser, a day-to-month history of every panel, notices.

- :mod:`.settings` — the ``console:`` section of panelctl's YAML config;
- :mod:`.fleet` — the live, thread-safe model of the panels and of what the console sent;
- :mod:`.history` — the heartbeats kept in SQLite (24 h full, then 5-minute averages);
- :mod:`.bridge` — the MQTT side: the broker's messages into the fleet and history,
  alerts, cancels, playlists and screenshot requests out to the panels.
"""
