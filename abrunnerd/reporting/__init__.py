"""How the runner tells the world what it is doing: journald/syslog/stderr logging
(``logs``), sd_notify (``notify``) and a D-Bus service (``dbus_service``).

Each adapter is optional at run time: where journald, systemd or a bus is absent the
daemon keeps working and says so once.
"""
