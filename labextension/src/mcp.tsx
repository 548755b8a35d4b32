/**
 * MCP for agents in the Kernel Sessions panel: the server's notebooks and
 * consoles form the MCP workspace `jupyter`; the panel shows its MCP URL and
 * copies a ready-made client configuration (URL and bearer token) for an
 * agent (Claude Code, Copilot, any MCP client).
 */
import { Clipboard } from '@jupyterlab/apputils';
import { copyIcon } from '@jupyterlab/ui-components';
import * as React from 'react';

import { SupervisorClient, SupervisorError } from './api';

/** The workspace of jupyter_server's own sessions (session_ext/mcp). */
export const JUPYTER_WORKSPACE = 'jupyter';

/** `GET /supervisor/mcp/workspaces/{id}`: Positron's McpWorkspace. */
export interface IMcpWorkspace {
  workspace_id: string;
  token: string;
  port: number;
  url: string;
}

/** The MCP client configuration an agent reads (`.mcp.json`, `mcpServers`). */
export function clientConfiguration(ws: IMcpWorkspace): string {
  return JSON.stringify(
    {
      mcpServers: {
        jupyter: {
          type: 'http',
          url: ws.url,
          headers: { Authorization: `Bearer ${ws.token}` }
        }
      }
    },
    null,
    2
  );
}

/**
 * Fetches the workspace; `null` when the server has none (404: the feature is
 * off) or cannot say. `changed` is called once it is known.
 */
export class McpWorkspaceInfo {
  constructor(
    readonly client: SupervisorClient,
    readonly changed: () => void
  ) {}

  workspace: IMcpWorkspace | null = null;

  async load(): Promise<void> {
    try {
      this.workspace = await this.client.getMcpWorkspace(JUPYTER_WORKSPACE);
    } catch (err) {
      if (!(err instanceof SupervisorError)) {
        throw err;
      }
      this.workspace = null;
    }
    this.changed();
  }
}

/** The panel's MCP box: the URL, and a button copying the configuration. */
export function McpView(props: {
  workspace: IMcpWorkspace | null;
  copied: boolean;
  onCopy: (text: string) => void;
}): JSX.Element | null {
  const ws = props.workspace;
  if (!ws) {
    return null;
  }
  return (
    <div className="jp-SessionExt-mcp" data-workspace-id={ws.workspace_id}>
      <span
        className="jp-SessionExt-mcpLabel"
        title="Agents reach these notebooks and consoles here"
      >
        MCP
      </span>
      <code className="jp-SessionExt-mcpUrl" title={ws.url}>
        {ws.url}
      </code>
      <button
        className="jp-Button jp-mod-minimal jp-SessionExt-action"
        data-action="copy-mcp-config"
        title="Copy an MCP client configuration for agents (URL and token)"
        aria-label="Copy an MCP client configuration for agents (URL and token)"
        onClick={() => props.onCopy(clientConfiguration(ws))}
      >
        <copyIcon.react tag="span" />
      </button>
      {props.copied && <span className="jp-SessionExt-mcpCopied">copied</span>}
    </div>
  );
}

/** Put text on the system clipboard (JupyterLab's helper). */
export function copyText(text: string): void {
  Clipboard.copyToSystem(text);
}

/** The mark of a cell an agent queued: its name. */
export function AgentBadge(props: { agent?: string }): JSX.Element | null {
  if (!props.agent) {
    return null;
  }
  return (
    <span
      className="jp-SessionExt-agent"
      data-agent={props.agent}
      title={`Run by an agent (MCP): ${props.agent}`}
    >
      agent: {props.agent}
    </span>
  );
}
