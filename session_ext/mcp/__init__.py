"""MCP for agents: workspaces (Positron's model), the MCP server on its own 127.0.0.1 port,
its tools, and the stdio bridge."""
