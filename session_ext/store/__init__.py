"""Persistence: sqlite on a worker thread (one server per database), the writes of one
event-loop turn, and the stored shapes of sessions and queued requests."""
