/**
 * REST calls to the supervisor (`{baseUrl}supervisor/...`). ServerConnection
 * adds the base URL, token and XSRF header exactly as for JupyterLab's own
 * requests, so whatever auth the server uses just works.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { IMcpWorkspace } from './mcp';
import { IActiveSession } from './model';

/** A failed supervisor request; `message` is the server's text for users. */
export class SupervisorError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code?: unknown,
    readonly details?: unknown
  ) {
    super(message);
    this.name = 'SupervisorError';
  }
}

export interface IQueueEntry {
  msg_id: string;
  code: string;
  queued_at?: number;
  source?: string;
  agent?: string;
}

export interface IQueueResponse {
  active: IQueueEntry | null;
  pending: IQueueEntry[];
  length: number;
}

/** One cell's latest execution, as `GET /sessions/{id}/cells` returns it. */
export interface ICellExecution {
  cell_id: string;
  msg_id: string;
  code: string;
  status: 'queued' | 'running' | 'ok' | 'error' | 'aborted';
  execution_count: number | null;
  /** nbformat v4 outputs (a size-bound marker first when outputs_dropped > 0). */
  outputs: Record<string, unknown>[];
  outputs_dropped?: number;
  queued_at: number;
  started_at?: number | null;
  finished_at?: number | null;
  reason?: string;
}

export interface ICellsResponse {
  session_id: string;
  notebook_uri: string | null;
  cells: ICellExecution[];
}

export class SupervisorClient {
  constructor(settings?: ServerConnection.ISettings) {
    this.settings = settings ?? ServerConnection.makeSettings();
  }

  readonly settings: ServerConnection.ISettings;

  /** ws(s):// URL of the events socket, with `?token=` when there is one. */
  eventsUrl(): string {
    const url = URLExt.join(this.settings.wsUrl, 'supervisor', 'events');
    const token = this.settings.token;
    return token ? `${url}?token=${encodeURIComponent(token)}` : url;
  }

  async listSessions(): Promise<IActiveSession[]> {
    const body = await this._request<{ sessions: IActiveSession[] }>(
      ['sessions'],
      { method: 'GET' }
    );
    return body.sessions ?? [];
  }

  interrupt(sessionId: string): Promise<unknown> {
    return this._request(['sessions', sessionId, 'interrupt'], {
      method: 'POST'
    });
  }

  restart(sessionId: string): Promise<unknown> {
    return this._request(['sessions', sessionId, 'restart'], {
      method: 'POST',
      body: '{}'
    });
  }

  kill(sessionId: string): Promise<unknown> {
    return this._request(['sessions', sessionId, 'kill'], { method: 'POST' });
  }

  /** Shut the kernel down and remove the session. */
  shutdown(sessionId: string): Promise<unknown> {
    return this._request(
      ['sessions', sessionId],
      { method: 'DELETE' },
      '?force=true'
    );
  }

  getQueue(sessionId: string): Promise<IQueueResponse> {
    return this._request<IQueueResponse>(['sessions', sessionId, 'queue'], {
      method: 'GET'
    });
  }

  /** What each notebook cell's latest execution produced (kept by the server). */
  getCells(sessionId: string): Promise<ICellsResponse> {
    return this._request<ICellsResponse>(['sessions', sessionId, 'cells'], {
      method: 'GET'
    });
  }

  /** An MCP workspace: its id, token, port and URL (404 when there is none). */
  getMcpWorkspace(workspaceId: string): Promise<IMcpWorkspace> {
    return this._request<IMcpWorkspace>(['mcp', 'workspaces', workspaceId], {
      method: 'GET'
    });
  }

  /** Cancel one pending request (404: not pending, 409: already running). */
  cancelQueued(sessionId: string, msgId: string): Promise<unknown> {
    return this._request(['sessions', sessionId, 'queue', msgId], {
      method: 'DELETE'
    });
  }

  private async _request<T = unknown>(
    parts: string[],
    init: RequestInit,
    query = ''
  ): Promise<T> {
    const url =
      URLExt.join(
        this.settings.baseUrl,
        'supervisor',
        ...parts.map(encodeURIComponent)
      ) + query;
    if (init.body !== undefined) {
      init = {
        ...init,
        headers: { 'Content-Type': 'application/json', ...init.headers }
      };
    }
    // Throws ServerConnection.NetworkError when the server is unreachable.
    const response = await ServerConnection.makeRequest(
      url,
      init,
      this.settings
    );
    const text = await response.text();
    let body: any = undefined;
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
    }
    if (!response.ok) {
      const message =
        body && typeof body.message === 'string' && body.message
          ? body.message
          : `${response.status} ${response.statusText || 'request failed'}`;
      throw new SupervisorError(
        message,
        response.status,
        body?.code,
        body?.details
      );
    }
    return body as T;
  }
}
