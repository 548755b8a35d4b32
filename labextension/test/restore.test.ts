import { describe, expect, it } from 'vitest';

import type { ICellExecution } from '../src/api';
import {
  ICellState,
  outputsEqual,
  planRestore,
  summarize
} from '../src/restore';

const SAVED = Date.parse('2026-01-01T10:00:00Z');
const AFTER = SAVED + 60_000;
const BEFORE = SAVED - 60_000;

const stream = (text: string, name = 'stdout') => ({
  output_type: 'stream',
  name,
  text
});

function cell(id: string, source: string, extra: Partial<ICellState> = {}) {
  return { id, source, executionCount: null, outputs: [], ...extra };
}

function execution(
  cellId: string,
  code: string,
  extra: Partial<ICellExecution> = {}
): ICellExecution {
  return {
    cell_id: cellId,
    msg_id: `msg-${cellId}`,
    code,
    status: 'ok',
    execution_count: 1,
    outputs: [stream(`${code}\n`)],
    outputs_dropped: 0,
    queued_at: AFTER - 1000,
    started_at: AFTER - 500,
    finished_at: AFTER,
    ...extra
  };
}

describe('planRestore', () => {
  it('fills the cells that ran after the last save, in notebook order', () => {
    const plan = planRestore({
      cells: [cell('a', 'print(1)'), cell('b', 'print(2)'), cell('c', 'x')],
      executions: [
        execution('b', 'print(2)', { execution_count: 2 }),
        execution('a', 'print(1)', { execution_count: 1 })
      ],
      lastSaved: SAVED
    });
    expect(plan.unknown).toEqual([]);
    expect(plan.actions).toEqual([
      {
        kind: 'fill',
        cellId: 'a',
        msgId: 'msg-a',
        status: 'ok',
        executionCount: 1,
        outputs: [stream('print(1)\n')]
      },
      {
        kind: 'fill',
        cellId: 'b',
        msgId: 'msg-b',
        status: 'ok',
        executionCount: 2,
        outputs: [stream('print(2)\n')]
      }
    ]);
    // c has no server record: no action at all.
    expect(plan.actions.map(a => a.cellId)).not.toContain('c');
  });

  it('leaves a cell alone whose source was edited since it ran', () => {
    const plan = planRestore({
      cells: [
        cell('a', 'print(1)  # edited', {
          executionCount: 7,
          outputs: [stream('mine\n')]
        })
      ],
      executions: [execution('a', 'print(1)')],
      lastSaved: SAVED
    });
    expect(plan.actions).toEqual([
      { kind: 'skip', cellId: 'a', msgId: 'msg-a', reason: 'edited' }
    ]);
    expect(summarize(plan)).toBe('1 edited cell was left alone');
  });

  it('ignores executions of cell ids the notebook no longer has', () => {
    const plan = planRestore({
      cells: [cell('a', 'print(1)')],
      executions: [execution('gone', 'print(9)'), execution('a', 'print(1)')],
      lastSaved: SAVED
    });
    expect(plan.unknown).toEqual(['gone']);
    expect(plan.actions.map(a => [a.cellId, a.kind])).toEqual([['a', 'fill']]);
  });

  it('ignores executions without a cell id', () => {
    const plan = planRestore({
      cells: [cell('', 'print(1)')],
      executions: [execution('', 'print(1)')],
      lastSaved: null
    });
    expect(plan).toEqual({ actions: [], unknown: [] });
  });

  it('marks queued and running cells pending, with their outputs so far', () => {
    const plan = planRestore({
      cells: [
        cell('a', 'slow()', { executionCount: 3, outputs: [stream('old\n')] }),
        cell('b', 'print(2)'),
        cell('c', 'print(3)  # edited')
      ],
      executions: [
        execution('a', 'slow()', {
          status: 'running',
          execution_count: 4,
          outputs: [stream('step 1\n')],
          finished_at: null
        }),
        execution('b', 'print(2)', {
          status: 'queued',
          execution_count: null,
          outputs: [],
          started_at: null,
          finished_at: null
        }),
        execution('c', 'print(3)', {
          status: 'queued',
          execution_count: null,
          outputs: [],
          started_at: null,
          finished_at: null
        })
      ],
      // Pending work is restored however old the save: it is not in any file.
      lastSaved: AFTER + 3_600_000
    });
    expect(plan.actions).toEqual([
      {
        kind: 'pending',
        cellId: 'a',
        msgId: 'msg-a',
        status: 'running',
        executionCount: 4,
        outputs: [stream('step 1\n')]
      },
      {
        kind: 'pending',
        cellId: 'b',
        msgId: 'msg-b',
        status: 'queued',
        executionCount: null,
        outputs: []
      },
      { kind: 'skip', cellId: 'c', msgId: 'msg-c', reason: 'edited' }
    ]);
    expect(summarize(plan)).toBe(
      '2 cells still queued or running; 1 edited cell was left alone'
    );
  });

  it('restores errors with their count and traceback', () => {
    const error = {
      output_type: 'error',
      ename: 'ZeroDivisionError',
      evalue: 'division by zero',
      traceback: ['Traceback...', 'ZeroDivisionError: division by zero']
    };
    const plan = planRestore({
      cells: [cell('a', '1/0')],
      executions: [
        execution('a', '1/0', {
          status: 'error',
          execution_count: 5,
          outputs: [stream('before\n'), error]
        })
      ],
      lastSaved: SAVED
    });
    expect(plan.actions).toEqual([
      {
        kind: 'fill',
        cellId: 'a',
        msgId: 'msg-a',
        status: 'error',
        executionCount: 5,
        outputs: [stream('before\n'), error]
      }
    ]);
    expect(summarize(plan)).toBe(
      '1 cell ran while this notebook was closed; outputs restored'
    );
  });

  it('shows aborted cells as not run: no outputs, no count', () => {
    const plan = planRestore({
      cells: [
        cell('a', 'print(1)', { executionCount: 2, outputs: [stream('1\n')] })
      ],
      executions: [
        execution('a', 'print(1)', {
          status: 'aborted',
          execution_count: null,
          outputs: [],
          started_at: null,
          finished_at: AFTER,
          reason: 'a cell before it failed'
        })
      ],
      lastSaved: SAVED
    });
    expect(plan.actions).toEqual([
      {
        kind: 'fill',
        cellId: 'a',
        msgId: 'msg-a',
        status: 'aborted',
        executionCount: null,
        outputs: []
      }
    ]);
    expect(summarize(plan)).toBe('1 cell did not run (aborted)');
  });

  it('keeps the drop marker of outputs cut by the size bound first', () => {
    const marker = stream('[12 outputs dropped]\n', 'stderr');
    const plan = planRestore({
      cells: [cell('a', 'spam()')],
      executions: [
        execution('a', 'spam()', {
          outputs: [marker, stream('tail\n')],
          outputs_dropped: 12
        })
      ],
      lastSaved: SAVED
    });
    const [action] = plan.actions;
    expect(action.kind).toBe('fill');
    expect(action.kind === 'fill' && action.outputs).toEqual([
      marker,
      stream('tail\n')
    ]);
  });

  it('skips what finished before the last save (the file has it, or the user cleared it)', () => {
    const plan = planRestore({
      cells: [cell('a', 'print(1)'), cell('b', 'print(2)  # edited')],
      executions: [
        execution('a', 'print(1)', { finished_at: BEFORE }),
        execution('b', 'print(2)', { finished_at: BEFORE })
      ],
      lastSaved: SAVED
    });
    expect(plan.actions.map(a => a.kind === 'skip' && a.reason)).toEqual([
      'old',
      'old' // edited before the save: nothing to say
    ]);
    expect(summarize(plan)).toBeNull();
  });

  it('uses the start or queue time when an execution has no finish time', () => {
    const plan = planRestore({
      cells: [cell('a', 'print(1)')],
      executions: [
        execution('a', 'print(1)', {
          status: 'aborted',
          queued_at: BEFORE,
          started_at: null,
          finished_at: null
        })
      ],
      lastSaved: SAVED
    });
    expect(plan.actions[0]).toMatchObject({ kind: 'skip', reason: 'old' });
  });

  it('restores everything finished when the save time is unknown', () => {
    const plan = planRestore({
      cells: [cell('a', 'print(1)')],
      executions: [execution('a', 'print(1)', { finished_at: BEFORE })],
      lastSaved: null
    });
    expect(plan.actions[0].kind).toBe('fill');
  });

  it('skips a cell that already shows the execution', () => {
    const plan = planRestore({
      cells: [
        cell('a', 'print(1)', {
          executionCount: 1,
          // as JupyterLab serializes it: text as a list of lines, metadata {}
          outputs: [
            { output_type: 'stream', name: 'stdout', text: ['print(1)\n'] }
          ]
        })
      ],
      executions: [execution('a', 'print(1)')],
      lastSaved: SAVED
    });
    expect(plan.actions[0]).toMatchObject({
      kind: 'skip',
      reason: 'unchanged'
    });
    expect(summarize(plan)).toBeNull();
  });

  it('fills a cell with the same count but other outputs', () => {
    const plan = planRestore({
      cells: [
        cell('a', 'print(1)', { executionCount: 1, outputs: [stream('x\n')] })
      ],
      executions: [execution('a', 'print(1)')],
      lastSaved: SAVED
    });
    expect(plan.actions[0].kind).toBe('fill');
  });

  it("never touches this page's own running execution or one already applied", () => {
    const executions = [
      execution('a', 'slow()', { status: 'running', finished_at: null }),
      execution('b', 'print(2)')
    ];
    const plan = planRestore({
      cells: [
        cell('a', 'slow()', { ownMsgId: 'msg-a' }),
        cell('b', 'print(2)')
      ],
      executions,
      lastSaved: SAVED,
      applied: new Set(['msg-b'])
    });
    expect(plan.actions.map(a => a.kind === 'skip' && a.reason)).toEqual([
      'own',
      'applied'
    ]);
    expect(summarize(plan)).toBeNull();
  });

  it('keeps the latest execution when the server lists a cell twice', () => {
    const plan = planRestore({
      cells: [cell('a', 'print(2)')],
      executions: [
        execution('a', 'print(1)', { msg_id: 'first' }),
        execution('a', 'print(2)', { msg_id: 'second', execution_count: 2 })
      ],
      lastSaved: SAVED
    });
    expect(plan.actions).toHaveLength(1);
    expect(plan.actions[0]).toMatchObject({ kind: 'fill', msgId: 'second' });
  });

  it('restores display_data with an image', () => {
    const png = {
      output_type: 'display_data',
      data: { 'image/png': 'iVBORw0KGgo=', 'text/plain': '<Image>' },
      metadata: {}
    };
    const plan = planRestore({
      cells: [cell('plot', 'show()')],
      executions: [execution('plot', 'show()', { outputs: [png] })],
      lastSaved: SAVED
    });
    expect(plan.actions[0]).toMatchObject({ kind: 'fill', outputs: [png] });
  });
});

describe('summarize', () => {
  it('says nothing when nothing came back', () => {
    expect(summarize({ actions: [], unknown: ['x'] })).toBeNull();
  });

  it('counts restored, pending, aborted and edited cells in one line', () => {
    const plan = planRestore({
      cells: [
        cell('a', 'a'),
        cell('b', 'b'),
        cell('c', 'c'),
        cell('d', 'd', { executionCount: 1, outputs: [stream('old\n')] }),
        cell('e', 'e2'),
        cell('f', 'f2')
      ],
      executions: [
        execution('a', 'a'),
        execution('b', 'b', { status: 'error' }),
        execution('c', 'c', { status: 'running', finished_at: null }),
        execution('d', 'd', { status: 'aborted', execution_count: null }),
        execution('e', 'e'),
        execution('f', 'f')
      ],
      lastSaved: SAVED
    });
    expect(summarize(plan)).toBe(
      '2 cells ran while this notebook was closed; outputs restored; ' +
        '1 cell still queued or running; 1 cell did not run (aborted); ' +
        '2 edited cells were left alone'
    );
  });
});

describe('outputsEqual', () => {
  it('treats list and string text, and absent and empty metadata, alike', () => {
    expect(
      outputsEqual(
        [
          {
            output_type: 'execute_result',
            data: { 'text/plain': ['1', '2'] },
            metadata: {},
            execution_count: 1
          }
        ],
        [
          {
            output_type: 'execute_result',
            data: { 'text/plain': '12' },
            execution_count: 1
          }
        ]
      )
    ).toBe(true);
  });

  it('tells different outputs apart', () => {
    expect(outputsEqual([stream('a')], [stream('b')])).toBe(false);
    expect(outputsEqual([stream('a')], [stream('a', 'stderr')])).toBe(false);
    expect(outputsEqual([stream('a')], [])).toBe(false);
  });
});
