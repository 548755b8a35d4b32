"""The REST and websocket handlers of the supervisor API (thin: they parse, call the
Supervisor and answer), and the MCP workspaces' handlers."""
