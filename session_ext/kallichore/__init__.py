"""Kallichore's outside: `session-ext-kcserver` (kcserver's command line), the server state
(connection file, handshake) and the per-session unix sockets of the socket transport."""
