import { describe, expect, it } from 'vitest';

import {
  canOpenConsole,
  describeStatus,
  documentPath,
  findSessionFor,
  firstLine,
  formatBytes,
  formatCpu,
  formatDuration,
  queueFromExecutionQueue,
  reconnectDelay,
  SessionStore,
  statusSeconds
} from '../src/model';
import { executeRequest, makeSession } from './fixtures';

function storeWith(...sessions: ReturnType<typeof makeSession>[]) {
  const store = new SessionStore();
  store.apply({ event: 'snapshot', sessions }, 0);
  return store;
}

describe('SessionStore', () => {
  it('starts empty and not loaded', () => {
    const store = new SessionStore();
    expect(store.size).toBe(0);
    expect(store.loaded).toBe(false);
    expect(store.entries()).toEqual([]);
  });

  it('replaces everything on snapshot', () => {
    const store = storeWith(makeSession({ session_id: 'a' }));
    expect(store.loaded).toBe(true);
    store.apply({
      event: 'snapshot',
      sessions: [
        makeSession({ session_id: 'b' }),
        makeSession({ session_id: 'c' })
      ]
    });
    expect(store.entries().map(e => e.session.session_id)).toEqual(['b', 'c']);
    expect(store.get('a')).toBeUndefined();
  });

  it('orders sessions by start time, then id', () => {
    const store = storeWith(
      makeSession({ session_id: 'late', started: '2025-01-02T00:00:00Z' }),
      makeSession({ session_id: 'z', started: '2025-01-01T00:00:00Z' }),
      makeSession({ session_id: 'y', started: '2025-01-01T00:00:00Z' }),
      // Same instant written with an offset still sorts by time.
      makeSession({ session_id: 'early', started: '2025-01-01T00:30:00+02:00' })
    );
    expect(store.entries().map(e => e.session.session_id)).toEqual([
      'early',
      'y',
      'z',
      'late'
    ]);
  });

  it('adds, replaces and deletes single sessions', () => {
    const store = storeWith();
    expect(
      store.apply({ event: 'session_created', session: makeSession() })
    ).toBe(true);
    expect(store.get('s1')?.session.status).toBe('idle');

    store.apply({
      event: 'session_updated',
      session: makeSession({ status: 'busy', tags: ['etl'] })
    });
    expect(store.get('s1')?.session.status).toBe('busy');
    expect(store.get('s1')?.session.tags).toEqual(['etl']);

    expect(store.apply({ event: 'session_deleted', session_id: 's1' })).toBe(
      true
    );
    expect(store.size).toBe(0);
    expect(store.apply({ event: 'session_deleted', session_id: 's1' })).toBe(
      false
    );
  });

  it('normalises the queue of a snapshot (full Jupyter messages)', () => {
    const store = storeWith(
      makeSession({
        status: 'busy',
        execution_queue: {
          active: executeRequest('m0', 'import time\ntime.sleep(10)'),
          length: 2,
          pending: [
            executeRequest('m1', 'x = 1'),
            executeRequest('m2', '\n\nprint(x)\n')
          ]
        }
      })
    );
    expect(store.get('s1')?.queue).toEqual({
      active: { msgId: 'm0', code: 'import time\ntime.sleep(10)' },
      pending: [
        { msgId: 'm1', code: 'x = 1' },
        { msgId: 'm2', code: '\n\nprint(x)\n' }
      ],
      length: 2
    });
  });

  it('applies queue events, keeping the true length when pending is capped', () => {
    const store = storeWith(makeSession());
    const pending = Array.from({ length: 50 }, (_, i) => ({
      msg_id: `m${i}`,
      code: `cell ${i}`
    }));
    store.apply({
      event: 'queue',
      session_id: 's1',
      length: 10000,
      active: { msg_id: 'run', code: 'busy()' },
      pending
    });
    const q = store.get('s1')!.queue;
    expect(q.length).toBe(10000);
    expect(q.pending).toHaveLength(50);
    expect(q.pending[49]).toEqual({ msgId: 'm49', code: 'cell 49' });
    expect(q.active).toEqual({ msgId: 'run', code: 'busy()' });

    store.apply({
      event: 'queue',
      session_id: 's1',
      length: 0,
      active: null,
      pending: []
    });
    expect(store.get('s1')!.queue).toEqual({
      active: null,
      pending: [],
      length: 0
    });
  });

  it('applies resource usage, including null', () => {
    const store = storeWith(makeSession());
    const usage = {
      cpu_percent: 37,
      memory_bytes: 123 * 1024 * 1024,
      thread_count: 4,
      sampling_period_ms: 1000,
      timestamp: 1700000000000
    };
    store.apply({
      event: 'resource_usage',
      session_id: 's1',
      resource_usage: usage
    });
    expect(store.get('s1')?.session.resource_usage).toEqual(usage);
    store.apply({
      event: 'resource_usage',
      session_id: 's1',
      resource_usage: null
    });
    expect(store.get('s1')?.session.resource_usage).toBeNull();
  });

  it('ignores unknown events, malformed frames and unknown sessions', () => {
    const store = storeWith(makeSession());
    let emitted = 0;
    store.changed.connect(() => emitted++);
    const before = store.get('s1');
    for (const frame of [
      { event: 'server_status', sessions: 3 },
      { event: 'status', session_id: 'nope', status: 'busy' },
      {
        event: 'queue',
        session_id: 'nope',
        length: 1,
        active: null,
        pending: []
      },
      { event: 'resource_usage', session_id: 'nope', resource_usage: null },
      { event: 'session_created', session: { no_id: true } },
      { event: 'snapshot', sessions: 'not a list' },
      { no_event: true },
      null,
      'snapshot',
      [1, 2]
    ]) {
      expect(store.apply(frame)).toBe(false);
    }
    expect(emitted).toBe(0);
    expect(store.get('s1')).toBe(before);
  });

  it('emits changed once per applied event', () => {
    const store = new SessionStore();
    let emitted = 0;
    store.changed.connect(() => emitted++);
    store.apply({ event: 'snapshot', sessions: [makeSession()] });
    store.apply({
      event: 'status',
      session_id: 's1',
      status: 'busy',
      reason: 'execute_request'
    });
    expect(emitted).toBe(2);
  });
});

describe('busy/idle clock', () => {
  it('ticks locally from the server value', () => {
    const store = new SessionStore();
    store.apply(
      {
        event: 'snapshot',
        sessions: [makeSession({ status: 'busy', busy_seconds: 5 })]
      },
      1000
    );
    const entry = store.get('s1')!;
    expect(statusSeconds(entry, 1000)).toBe(5);
    expect(statusSeconds(entry, 4500)).toBe(8);
    expect(describeStatus(entry, 66000)).toBe('busy 1m 10s');
  });

  it('restarts from zero when the status changes, not on a repeat', () => {
    const store = new SessionStore();
    store.apply(
      {
        event: 'snapshot',
        sessions: [makeSession({ status: 'idle', idle_seconds: 100 })]
      },
      0
    );
    store.apply(
      {
        event: 'status',
        session_id: 's1',
        status: 'busy',
        reason: 'execute_request',
        timestamp: 1
      },
      10000
    );
    expect(statusSeconds(store.get('s1')!, 13000)).toBe(3);

    expect(
      store.apply({ event: 'status', session_id: 's1', status: 'busy' }, 12000)
    ).toBe(false);
    expect(statusSeconds(store.get('s1')!, 13000)).toBe(3);

    store.apply({ event: 'status', session_id: 's1', status: 'idle' }, 20000);
    expect(describeStatus(store.get('s1')!, 20000)).toBe('idle 0s');
  });

  it('has no clock for other statuses and never goes negative', () => {
    const store = new SessionStore();
    store.apply(
      { event: 'snapshot', sessions: [makeSession({ status: 'exited' })] },
      5000
    );
    expect(statusSeconds(store.get('s1')!, 6000)).toBeNull();
    expect(describeStatus(store.get('s1')!, 6000)).toBe('exited');
    store.apply({ event: 'status', session_id: 's1', status: 'idle' }, 5000);
    expect(statusSeconds(store.get('s1')!, 1000)).toBe(0);
  });

  it('clears waiting_input when the kernel leaves busy', () => {
    const store = storeWith(
      makeSession({ status: 'busy', waiting_input: true })
    );
    store.apply({ event: 'status', session_id: 's1', status: 'idle' });
    expect(store.get('s1')!.session.waiting_input).toBe(false);
  });
});

describe('formatting', () => {
  it('formats durations', () => {
    expect(formatDuration(0)).toBe('0s');
    expect(formatDuration(59.9)).toBe('59s');
    expect(formatDuration(60)).toBe('1m 00s');
    expect(formatDuration(125)).toBe('2m 05s');
    expect(formatDuration(3725)).toBe('1h 02m');
    expect(formatDuration(90000)).toBe('1d 1h');
    expect(formatDuration(-3)).toBe('0s');
  });

  it('formats bytes in binary units', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(1023)).toBe('1023 B');
    expect(formatBytes(1536)).toBe('1.50 KiB');
    expect(formatBytes(230 * 1024 * 1024)).toBe('230 MiB');
    expect(formatBytes(12.25 * 1024 ** 3)).toBe('12.3 GiB');
    expect(formatBytes(NaN)).toBe('—');
  });

  it('formats cpu', () => {
    expect(formatCpu(12.6)).toBe('13%');
  });

  it('summarises a cell by its first non-blank line', () => {
    expect(firstLine('\n  \n  df = load()\nmore')).toBe('df = load()');
    expect(firstLine('')).toBe('(empty cell)');
    expect(firstLine('x'.repeat(100), 10)).toBe('xxxxxxxxx…');
    expect(firstLine('a\r\nb')).toBe('a');
  });

  it('handles queues without messages or code', () => {
    expect(queueFromExecutionQueue(null)).toEqual({
      active: null,
      pending: [],
      length: 0
    });
    expect(
      queueFromExecutionQueue({
        active: { header: { msg_id: 'k', msg_type: 'execute_request' } },
        length: 1,
        pending: [{ header: { msg_id: 'p' } }]
      })
    ).toEqual({
      active: { msgId: 'k', code: '' },
      pending: [{ msgId: 'p', code: '' }],
      length: 1
    });
  });
});

describe('sessions and documents', () => {
  it('takes the document path from metadata.path only', () => {
    expect(documentPath(makeSession())).toBe('dir/Untitled.ipynb');
    expect(documentPath(makeSession({ metadata: {} }))).toBeNull();
    expect(documentPath(makeSession({ metadata: { path: 3 } }))).toBeNull();
  });

  it('offers a console for running console/background sessions', () => {
    expect(canOpenConsole(makeSession({ session_mode: 'background' }))).toBe(
      true
    );
    expect(
      canOpenConsole(makeSession({ session_mode: 'console', status: 'busy' }))
    ).toBe(true);
    expect(canOpenConsole(makeSession({ session_mode: 'notebook' }))).toBe(
      false
    );
    expect(
      canOpenConsole(
        makeSession({ session_mode: 'background', status: 'exited' })
      )
    ).toBe(false);
    expect(
      canOpenConsole(makeSession({ session_mode: 'background', kernel_id: '' }))
    ).toBe(false);
  });

  it('finds the session of a notebook by session id, then kernel id', () => {
    const store = storeWith(
      makeSession({ session_id: 'nb-session', kernel_id: 'k-nb' }),
      makeSession({ session_id: 'other', kernel_id: 'k-other' })
    );
    expect(
      findSessionFor(store, { sessionId: 'nb-session', kernelId: 'k-other' })
        ?.session.session_id
    ).toBe('nb-session');
    expect(
      findSessionFor(store, { sessionId: 'unknown', kernelId: 'k-other' })
        ?.session.session_id
    ).toBe('other');
    expect(
      findSessionFor(store, { sessionId: null, kernelId: 'k-nb' })?.session
        .session_id
    ).toBe('nb-session');
    expect(
      findSessionFor(store, { sessionId: 'unknown', kernelId: 'unknown' })
    ).toBeNull();
    expect(findSessionFor(store, {})).toBeNull();
  });
});

describe('reconnectDelay', () => {
  it('doubles up to the maximum', () => {
    const random = () => 0.5; // no jitter
    expect(
      [0, 1, 2, 3, 4, 5, 6, 20].map(a => reconnectDelay(a, { random }))
    ).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it('jitters by at most 20%', () => {
    expect(reconnectDelay(0, { random: () => 0 })).toBe(800);
    expect(reconnectDelay(0, { random: () => 1 })).toBe(1200);
    expect(reconnectDelay(2, { base: 10, max: 100, random: () => 0.5 })).toBe(
      40
    );
  });
});
