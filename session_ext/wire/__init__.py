"""Jupyter messages on the wire: raw ZeroMQ frames spliced into websocket frames (the hot
path), client frames parsed; websocket framing for the unix-socket transport."""
