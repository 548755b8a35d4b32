"""session_ext: a kernel supervisor for jupyter_server with a Kallichore-compatible API."""

__version__ = "0.1.0"


def _jupyter_server_extension_points():
    from .app import SessionExtApp

    return [{"module": "session_ext.app", "app": SessionExtApp}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "session-ext-labextension"}]
