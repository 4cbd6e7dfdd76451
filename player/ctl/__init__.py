"""panelctl: the central-server and maintenance side of the panel protocol (docs/protocol.md).

Modules: :mod:`.cli` (the command line), :mod:`.settings` (broker, TLS, prefix),
:mod:`.client` (a small blocking MQTT client), :mod:`.status` (the fleet table),
:mod:`.push` (playlists and assets), :mod:`.alerts` (alert send/cancel/list),
:mod:`.track` (waiting for the panels' answers).
"""
