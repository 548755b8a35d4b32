// @vitest-environment jsdom
/**
 * Renders the real sidebar widget in jsdom and drives it through its DOM
 * contract (the selectors documented in README.md).
 */
import './dom-shim';

import { ServerConnection } from '@jupyterlab/services';
import { CommandRegistry } from '@lumino/commands';
import { Widget } from '@lumino/widgets';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { SupervisorClient } from '../src/api';
import { EventStream } from '../src/events';
import { SessionStore } from '../src/model';
import { SessionsPanel } from '../src/panel';
import { executeRequest, makeSession } from './fixtures';

interface ICall {
  method: string;
  path: string;
}

let calls: ICall[];
let replies: { [key: string]: () => Response };
let executed: { id: string; args: unknown }[];
let store: SessionStore;
let stream: EventStream;
let panel: SessionsPanel;

async function flush(): Promise<void> {
  // Let pending promises (fetch, dialogs) settle, then wait for React.
  for (let i = 0; i < 5; i++) {
    await new Promise(r => setTimeout(r, 0));
  }
  panel.update();
  await new Promise(r => requestAnimationFrame(() => r(undefined)));
  await panel.renderPromise;
}

function $(selector: string): HTMLElement | null {
  return panel.node.querySelector(selector);
}

function click(el: Element | null): void {
  expect(el).not.toBeNull();
  (el as HTMLElement).click();
}

beforeEach(async () => {
  calls = [];
  replies = {};
  executed = [];
  const settings = ServerConnection.makeSettings({
    baseUrl: 'http://localhost/',
    wsUrl: 'ws://localhost/',
    token: 't',
    fetch: async (input: RequestInfo | URL, init?: RequestInit) => {
      const req = new Request(input as RequestInfo, init);
      const url = new URL(req.url);
      const path =
        url.pathname + (url.search.includes('force') ? '?force=true' : '');
      calls.push({ method: req.method, path });
      const reply = replies[`${req.method} ${path}`];
      return reply ? reply() : new Response('{}', { status: 200 });
    }
  });
  const commands = new CommandRegistry();
  for (const id of ['docmanager:open', 'console:create']) {
    commands.addCommand(id, {
      execute: args => {
        executed.push({ id, args });
      }
    });
  }
  store = new SessionStore();
  // Never started: the test feeds the store directly.
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
    commands
  });
  Widget.attach(panel, document.body);
  await flush();
});

afterEach(() => {
  panel.dispose();
  stream.dispose();
  document.body.innerHTML = '';
});

describe('SessionsPanel', () => {
  it('has the sidebar identity', () => {
    expect(panel.id).toBe('session-ext:panel');
    expect(panel.title.caption).toBe('Kernel Sessions');
    expect(panel.title.icon).toBeTruthy();
    expect($('.jp-SessionExt-empty')?.textContent).toBe(
      'Loading kernel sessions…'
    );
    expect($('.jp-SessionExt-connection')?.dataset.state).toBe('closed');
  });

  it('renders every field of a session', async () => {
    store.apply({
      event: 'snapshot',
      sessions: [
        makeSession({
          status: 'busy',
          busy_seconds: 65,
          tags: ['etl', 'nightly'],
          resource_usage: {
            cpu_percent: 42,
            memory_bytes: 300 * 1024 * 1024,
            thread_count: 3,
            sampling_period_ms: 1000,
            timestamp: 0
          },
          execution_queue: {
            active: executeRequest('m0', 'train()\nmore'),
            length: 2,
            pending: [
              executeRequest('m1', '# load\ndf = load()'),
              executeRequest('m2', 'plot(df)')
            ]
          }
        })
      ]
    });
    await flush();
    const row = $('.jp-SessionExt-session[data-session-id="s1"]')!;
    expect(row).not.toBeNull();
    expect(row.dataset.status).toBe('busy');
    expect(row.dataset.mode).toBe('notebook');
    expect(row.querySelector('.jp-SessionExt-name')?.textContent).toBe(
      'Python 3 (ipykernel)'
    );
    expect(row.querySelector('.jp-SessionExt-language')?.textContent).toBe(
      'python'
    );
    expect(row.querySelector('.jp-SessionExt-status')?.textContent).toMatch(
      /^busy 1m 0[5-9]s$/
    );
    expect(row.querySelector('.jp-SessionExt-cpu')?.textContent).toBe('42%');
    expect(row.querySelector('.jp-SessionExt-memory')?.textContent).toBe(
      '300 MiB'
    );
    expect(
      [...row.querySelectorAll('.jp-SessionExt-tag')].map(t => t.textContent)
    ).toEqual(['etl', 'nightly']);
    expect(row.querySelector('.jp-SessionExt-queueLength')?.textContent).toBe(
      '2'
    );
    expect(
      row.querySelector('.jp-SessionExt-activeCell')?.textContent
    ).toContain('train()');
    // Collapsed until toggled.
    expect(row.querySelector('.jp-SessionExt-queuedCell')).toBeNull();
    click(row.querySelector('[data-action="toggle-queue"]'));
    await flush();
    const cells = [
      ...row.querySelectorAll<HTMLElement>('.jp-SessionExt-queuedCell')
    ];
    expect(
      cells.map(c => [c.dataset.msgId, c.querySelector('code')?.textContent])
    ).toEqual([
      ['m1', '# load'],
      ['m2', 'plot(df)']
    ]);
    // Notebook sessions get no console button.
    expect(row.querySelector('[data-action="console"]')).toBeNull();
  });

  it('shows "—" without resource usage and counts unlisted cells', async () => {
    store.apply({ event: 'snapshot', sessions: [makeSession()] });
    store.apply({
      event: 'queue',
      session_id: 's1',
      length: 75,
      active: null,
      pending: Array.from({ length: 50 }, (_, i) => ({
        msg_id: `m${i}`,
        code: `c${i}`
      }))
    });
    await flush();
    expect($('.jp-SessionExt-memory')?.textContent).toBe('—');
    click($('[data-action="toggle-queue"]'));
    await flush();
    expect(
      panel.node.querySelectorAll('.jp-SessionExt-queuedCell')
    ).toHaveLength(50);
    expect($('.jp-SessionExt-queueMore')?.textContent).toBe('… and 25 more');
  });

  it('marks a kernel that runs on another machine', async () => {
    const remote = makeSession({
      session_id: 'r1',
      process_id: null,
      provisioner: {
        name: 'distributed-provisioner',
        local: false,
        host: 'gpu-3',
        pid: 812
      }
    });
    store.apply({ event: 'snapshot', sessions: [makeSession(), remote] });
    await flush();
    const marks = panel.node.querySelectorAll('.jp-SessionExt-remote');
    expect(marks).toHaveLength(1);
    expect(
      marks[0].closest('[data-session-id]')?.getAttribute('data-session-id')
    ).toBe('r1');
    expect(marks[0].textContent).toBe('on gpu-3');
    expect(marks[0].getAttribute('title')).toContain('distributed-provisioner');
  });

  it('follows events: status, deletion', async () => {
    store.apply({ event: 'snapshot', sessions: [makeSession()] });
    await flush();
    store.apply({
      event: 'status',
      session_id: 's1',
      status: 'busy',
      reason: 'execute_request'
    });
    await flush();
    expect($('.jp-SessionExt-status')?.dataset.status).toBe('busy');
    expect($('.jp-SessionExt-status')?.textContent).toBe('busy 0s');
    store.apply({ event: 'session_deleted', session_id: 's1' });
    await flush();
    expect($('.jp-SessionExt-session')).toBeNull();
    expect($('.jp-SessionExt-empty')?.textContent).toBe('No kernel sessions.');
  });

  it('interrupts, restarts and cancels through the REST API', async () => {
    store.apply({
      event: 'snapshot',
      sessions: [
        makeSession({
          execution_queue: {
            active: null,
            length: 1,
            pending: [executeRequest('m1', 'x')]
          }
        })
      ]
    });
    await flush();
    click($('[data-action="interrupt"]'));
    await flush();
    click($('[data-action="restart"]'));
    await flush();
    click($('[data-action="toggle-queue"]'));
    await flush();
    click(
      $('.jp-SessionExt-queuedCell[data-msg-id="m1"] [data-action="cancel"]')
    );
    await flush();
    expect(calls).toEqual([
      { method: 'POST', path: '/supervisor/sessions/s1/interrupt' },
      { method: 'POST', path: '/supervisor/sessions/s1/restart' },
      { method: 'DELETE', path: '/supervisor/sessions/s1/queue/m1' }
    ]);
  });

  it('asks before shutting down, then deletes with force', async () => {
    store.apply({ event: 'snapshot', sessions: [makeSession()] });
    await flush();
    click($('[data-action="shutdown"]'));
    await flush();
    const dialog = document.querySelector('.jp-Dialog');
    expect(dialog?.textContent).toContain('Shut down kernel session?');
    expect(calls).toEqual([]);
    click(dialog!.querySelector('.jp-mod-accept'));
    await flush();
    expect(calls).toEqual([
      { method: 'DELETE', path: '/supervisor/sessions/s1?force=true' }
    ]);
  });

  it("shows the server's error message", async () => {
    replies['POST /supervisor/sessions/s1/interrupt'] = () =>
      new Response(
        JSON.stringify({ code: 'KS-3', message: 'Session s1 is not running' }),
        {
          status: 400
        }
      );
    store.apply({
      event: 'snapshot',
      sessions: [makeSession({ status: 'starting' })]
    });
    await flush();
    click($('[data-action="interrupt"]'));
    await flush();
    const dialog = document.querySelector('.jp-Dialog');
    expect(dialog?.textContent).toContain('Could not interrupt the session');
    expect(dialog?.textContent).toContain('Session s1 is not running');
  });

  it('opens the notebook and attaches consoles', async () => {
    store.apply({
      event: 'snapshot',
      sessions: [
        makeSession(),
        makeSession({
          session_id: 'bg',
          session_mode: 'background',
          kernel_id: 'k-bg',
          metadata: {},
          started: '2025-01-02T00:00:00Z'
        })
      ]
    });
    await flush();
    click($('[data-session-id="s1"] .jp-SessionExt-path'));
    click($('[data-session-id="bg"] [data-action="console"]'));
    await flush();
    expect($('[data-session-id="bg"] .jp-SessionExt-path')).toBeNull();
    expect(executed).toEqual([
      { id: 'docmanager:open', args: { path: 'dir/Untitled.ipynb' } },
      { id: 'console:create', args: { kernelPreference: { id: 'k-bg' } } }
    ]);
  });

  it('disables interrupt for sessions that are not running', async () => {
    store.apply({
      event: 'snapshot',
      sessions: [makeSession({ status: 'exited' })]
    });
    await flush();
    expect(($('[data-action="interrupt"]') as HTMLButtonElement).disabled).toBe(
      true
    );
    expect(($('[data-action="restart"]') as HTMLButtonElement).disabled).toBe(
      false
    );
  });
});
