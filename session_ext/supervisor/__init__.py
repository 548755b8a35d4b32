"""The Supervisor: every session of the server, creating, restoring and observing them
(events, persistence), and the periodic housekeeping (exits, culling, sampling)."""
