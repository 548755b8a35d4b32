// @vitest-environment jsdom
/**
 * MCP for agents in the panel: the `jupyter` workspace's URL, the copy button's
 * client configuration, and the mark on cells an agent queued.
 */
import './dom-shim';

import { Clipboard } from '@jupyterlab/apputils';
import { ServerConnection } from '@jupyterlab/services';
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';
import { afterEach, describe, expect, it, vi } from 'vitest';

import { SupervisorClient } from '../src/api';
import { EventStream } from '../src/events';
import { clientConfiguration, IMcpWorkspace } from '../src/mcp';
import {
  queueFromEvent,
  queueFromExecutionQueue,
  SessionStore
} from '../src/model';
import { SessionsPanel } from '../src/panel';
import { executeRequest, makeSession } from './fixtures';

const WORKSPACE: IMcpWorkspace = {
  workspace_id: 'jupyter',
  token: 'tok-123',
  port: 4242,
  url: 'http://127.0.0.1:4242/mcp/jupyter'
};

let panel: SessionsPanel;
let stream: EventStream;
let store: SessionStore;
let requested: string[];

async function render(workspaceStatus: number): Promise<void> {
  requested = [];
  const settings = ServerConnection.makeSettings({
    baseUrl: 'http://localhost/',
    wsUrl: 'ws://localhost/',
    token: 't',
    fetch: async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = new Request(input as RequestInfo, init);
      requested.push(`${req.method} ${new URL(req.url).pathname}`);
      return workspaceStatus === 200
        ? new Response(JSON.stringify(WORKSPACE), { status: 200 })
        : new Response('{"code": "not_found", "message": "no"}', {
            status: workspaceStatus
          });
    }
  });
  store = new SessionStore();
  stream = new EventStream({
    url: 'ws://localhost/supervisor/events',
    onEvent: f => store.apply(f),
    createSocket: () => {
      throw new Error('not used');
    }
  });
  panel = new SessionsPanel({
    store,
    stream,
    client: new SupervisorClient(settings),
    commands: new CommandRegistry(),
    mcp: true
  });
  Widget.attach(panel, document.body);
  await flush();
}

async function flush(): Promise<void> {
  for (let i = 0; i < 5; i++) {
    await new Promise(r => setTimeout(r, 0));
  }
  panel.update();
  await new Promise(r => requestAnimationFrame(() => r(undefined)));
  await panel.renderPromise;
}

afterEach(() => {
  panel.dispose();
  stream.dispose();
  document.body.innerHTML = '';
  vi.restoreAllMocks();
});

describe('MCP in the panel', () => {
  it('shows the workspace URL and copies a client configuration', async () => {
    await render(200);
    expect(requested).toContain('GET /supervisor/mcp/workspaces/jupyter');
    const box = panel.node.querySelector('.jp-SessionExt-mcp') as HTMLElement;
    expect(box.dataset.workspaceId).toBe('jupyter');
    expect(box.querySelector('.jp-SessionExt-mcpUrl')?.textContent).toBe(
      WORKSPACE.url
    );
    const copy = vi
      .spyOn(Clipboard, 'copyToSystem')
      .mockImplementation(() => {});
    (
      box.querySelector('[data-action="copy-mcp-config"]') as HTMLElement
    ).click();
    await flush();
    expect(copy).toHaveBeenCalledWith(clientConfiguration(WORKSPACE));
    const config = JSON.parse(copy.mock.calls[0][0] as string);
    expect(config.mcpServers.jupyter).toEqual({
      type: 'http',
      url: WORKSPACE.url,
      headers: { Authorization: 'Bearer tok-123' }
    });
    expect(panel.node.querySelector('.jp-SessionExt-mcpCopied')).not.toBeNull();
  });

  it('shows nothing when the server has no such workspace', async () => {
    await render(404);
    expect(panel.node.querySelector('.jp-SessionExt-mcp')).toBeNull();
  });

  it("marks the cells an agent queued with the agent's name", async () => {
    await render(404);
    const agentCell = executeRequest('m0', 'df.describe()');
    agentCell.metadata = {
      session_ext: { source: 'agent', agent: 'claude-code' }
    };
    store.apply({
      event: 'snapshot',
      sessions: [
        makeSession({
          status: 'busy',
          execution_queue: { active: agentCell, length: 0, pending: [] }
        })
      ]
    });
    await flush();
    const active = panel.node.querySelector('.jp-SessionExt-activeCell')!;
    expect(
      active.querySelector('.jp-SessionExt-agent')?.getAttribute('data-agent')
    ).toBe('claude-code');
    store.apply({
      event: 'queue',
      session_id: 's1',
      length: 2,
      active: { msg_id: 'm1', code: 'x', source: 'jupyter_server' },
      pending: [
        { msg_id: 'm2', code: 'y', source: 'agent', agent: 'copilot' },
        { msg_id: 'm3', code: 'z', source: 'websocket' }
      ]
    });
    await flush();
    (
      panel.node.querySelector('[data-action="toggle-queue"]') as HTMLElement
    ).click();
    await flush();
    expect(
      panel.node.querySelector('.jp-SessionExt-activeCell .jp-SessionExt-agent')
    ).toBeNull();
    const marks = [
      ...panel.node.querySelectorAll('.jp-SessionExt-queuedCell')
    ].map(
      li =>
        li.querySelector('.jp-SessionExt-agent')?.getAttribute('data-agent') ??
        null
    );
    expect(marks).toEqual(['copilot', null]);
  });

  it('reads the agent from both queue shapes', () => {
    expect(
      queueFromEvent({
        length: 0,
        active: { msg_id: 'a', code: '', source: 'agent' },
        pending: []
      }).active?.agent
    ).toBe('agent');
    const plain = executeRequest('b', 'print(1)');
    expect(
      queueFromExecutionQueue({ active: plain, length: 0, pending: [] }).active
        ?.agent
    ).toBeUndefined();
  });
});
