"""jupyter_server's own paths: /api/sessions notebooks and consoles as ActiveSessions,
JupyterLab's kernel websocket through the queue, and a lab whose kernels are a gateway's."""
