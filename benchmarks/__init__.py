"""Benchmarks of session_ext against direct ZeroMQ and stock jupyter_server (``python -m benchmarks.run``)."""
