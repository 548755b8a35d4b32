// @vitest-environment jsdom
/**
 * LiveOutputs feeding JupyterLab's real OutputAreaModel (the model a code
 * cell's outputs are), with kernel messages shaped as the kernel sends them.
 */
import './dom-shim';

import { OutputAreaModel } from '@jupyterlab/outputarea';
import { describe, expect, it } from 'vitest';

import { ILiveMessage, ILiveTarget, LiveOutputs } from '../src/liveOutputs';

function msg(
  parent: string,
  msgType: string,
  content: Record<string, unknown>,
  channel = 'iopub'
): ILiveMessage {
  return {
    channel,
    header: { msg_type: msgType },
    parent_header: { msg_id: parent },
    content
  };
}

function cellTarget(initial: any[] = []) {
  const outputs = new OutputAreaModel({ trusted: true });
  initial.forEach(o => outputs.add(o));
  const done: (number | null)[] = [];
  const target: ILiveTarget = { outputs, done: count => done.push(count) };
  return { outputs, done, target };
}

describe('LiveOutputs', () => {
  it('applies a running execution to its cell until idle', () => {
    const settled: string[] = [];
    const live = new LiveOutputs(id => settled.push(id));
    const initial = [{ output_type: 'stream', name: 'stdout', text: 'a\n' }];
    const cell = cellTarget(initial);
    live.watch('m1', cell.target, initial);

    expect(
      live.handle(msg('m1', 'execute_input', { execution_count: 4 }))
    ).toBe(true);
    live.handle(msg('m1', 'stream', { name: 'stdout', text: 'b\n' }));
    live.handle(msg('m1', 'stream', { name: 'stderr', text: 'warn\n' }));
    live.handle(
      msg('m1', 'execute_result', {
        data: { 'text/plain': '42' },
        metadata: {},
        execution_count: 4
      })
    );
    // Someone else's message is not this cell's.
    expect(
      live.handle(msg('other', 'stream', { name: 'stdout', text: 'x' }))
    ).toBe(false);
    expect(cell.outputs.toJSON()).toEqual([
      { output_type: 'stream', name: 'stdout', text: 'a\nb\n' },
      { output_type: 'stream', name: 'stderr', text: 'warn\n' },
      {
        output_type: 'execute_result',
        data: { 'text/plain': '42' },
        metadata: {},
        execution_count: 4
      }
    ]);
    expect(cell.done).toEqual([]);

    live.handle(
      msg('m1', 'execute_reply', { status: 'ok', execution_count: 4 }, 'shell')
    );
    expect(cell.done).toEqual([4]);
    expect(live.has('m1')).toBe(true); // iopub may still follow the reply
    live.handle(msg('m1', 'status', { execution_state: 'idle' }));
    expect(cell.done).toEqual([4]); // once
    expect(live.has('m1')).toBe(false);
    expect(settled).toEqual(['m1']);
  });

  it('ends at idle with the execute_input count when no reply comes', () => {
    const live = new LiveOutputs();
    const cell = cellTarget();
    live.watch('m1', cell.target);
    live.handle(msg('m1', 'execute_input', { execution_count: 9 }));
    live.handle(msg('m1', 'status', { execution_state: 'busy' }));
    expect(cell.done).toEqual([]);
    live.handle(msg('m1', 'status', { execution_state: 'idle' }));
    expect(cell.done).toEqual([9]);
    expect(live.size).toBe(0);
  });

  it('ends with the count it started with when its input came before', () => {
    // Another page ran it: its execute_input (and its reply) never reach
    // this one; the restore knows the count from the server's record.
    const live = new LiveOutputs();
    const cell = cellTarget();
    live.watch('m1', cell.target, [], 7);
    live.handle(msg('m1', 'stream', { name: 'stdout', text: 'late\n' }));
    live.handle(msg('m1', 'status', { execution_state: 'idle' }));
    expect(cell.done).toEqual([7]);
  });

  it('ends an aborted execution without a count', () => {
    const settled: string[] = [];
    const live = new LiveOutputs(id => settled.push(id));
    const cell = cellTarget();
    live.watch('m1', cell.target);
    live.handle(msg('m1', 'execute_reply', { status: 'aborted' }, 'shell'));
    expect(cell.done).toEqual([null]);
    expect(settled).toEqual(['m1']);
  });

  it('keeps an error output', () => {
    const live = new LiveOutputs();
    const cell = cellTarget();
    live.watch('m1', cell.target);
    live.handle(
      msg('m1', 'error', {
        ename: 'ValueError',
        evalue: 'bad',
        traceback: ['ValueError: bad']
      })
    );
    live.handle(
      msg(
        'm1',
        'execute_reply',
        { status: 'error', execution_count: 2, ename: 'ValueError' },
        'shell'
      )
    );
    expect(cell.outputs.toJSON()).toEqual([
      {
        output_type: 'error',
        ename: 'ValueError',
        evalue: 'bad',
        traceback: ['ValueError: bad']
      }
    ]);
    expect(cell.done).toEqual([2]);
  });

  it('clears outputs, at once or with wait at the next output', () => {
    const live = new LiveOutputs();
    const cell = cellTarget();
    live.watch('m1', cell.target);
    live.handle(msg('m1', 'stream', { name: 'stdout', text: '10%' }));
    live.handle(msg('m1', 'clear_output', { wait: true }));
    expect(cell.outputs.length).toBe(1); // still shown until the next output
    live.handle(msg('m1', 'stream', { name: 'stdout', text: '20%' }));
    expect(cell.outputs.toJSON()).toEqual([
      { output_type: 'stream', name: 'stdout', text: '20%' }
    ]);
    live.handle(msg('m1', 'clear_output', { wait: false }));
    expect(cell.outputs.length).toBe(0);
  });

  it('updates a display by its display_id, in place', () => {
    const live = new LiveOutputs();
    const cell = cellTarget();
    live.watch('m1', cell.target);
    live.handle(
      msg('m1', 'display_data', {
        data: { 'text/plain': 'v1' },
        metadata: {},
        transient: { display_id: 'd1' }
      })
    );
    live.handle(msg('m1', 'stream', { name: 'stdout', text: 'between\n' }));
    live.handle(
      msg('m1', 'update_display_data', {
        data: { 'text/plain': 'v2' },
        metadata: {},
        transient: { display_id: 'd1' }
      })
    );
    live.handle(
      msg('m1', 'update_display_data', {
        data: { 'text/plain': 'nobody' },
        metadata: {},
        transient: { display_id: 'unknown' }
      })
    );
    expect(cell.outputs.toJSON()).toEqual([
      {
        output_type: 'display_data',
        data: { 'text/plain': 'v2' },
        metadata: {}
      },
      { output_type: 'stream', name: 'stdout', text: 'between\n' }
    ]);
  });

  it('updates displays of the restored outputs too', () => {
    const live = new LiveOutputs();
    const initial = [
      {
        output_type: 'display_data',
        data: { 'text/plain': 'old' },
        metadata: {},
        transient: { display_id: 'bar' }
      }
    ];
    const cell = cellTarget(initial);
    live.watch('m1', cell.target, initial);
    live.handle(
      msg('m1', 'update_display_data', {
        data: { 'text/plain': 'new' },
        metadata: {},
        transient: { display_id: 'bar' }
      })
    );
    expect(cell.outputs.toJSON()).toMatchObject([
      { data: { 'text/plain': 'new' } }
    ]);
  });

  it('forgets a cell the user runs again, and abandons all on a restart', () => {
    const live = new LiveOutputs();
    const a = cellTarget();
    const b = cellTarget();
    live.watch('ma', a.target);
    live.watch('mb', b.target);
    live.forget(a.target);
    expect(
      live.handle(msg('ma', 'stream', { name: 'stdout', text: 'x' }))
    ).toBe(false);
    expect(a.outputs.length).toBe(0);
    live.handle(msg('mb', 'execute_input', { execution_count: 3 }));
    live.abandonAll();
    expect(b.done).toEqual([3]);
    expect(a.done).toEqual([]);
    expect(live.size).toBe(0);
  });
});
