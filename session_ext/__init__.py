"""session_ext: a kernel supervisor for jupyter_server with a Kallichore-compatible API."""

from ._version import __version__

__all__ = ["__version__"]


def _jupyter_server_extension_points():
    from session_ext.app import SessionExtApp

    return [{"module": "session_ext.app", "app": SessionExtApp}]


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "session-ext-labextension"}]
