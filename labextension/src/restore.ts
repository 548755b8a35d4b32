/**
 * Which notebook cells get which outputs when a notebook comes back to
 * executions the server kept while it was away (`GET .../cells`). Pure: no
 * JupyterLab objects, so every rule is unit-tested.
 *
 * The rules, for each cell's latest execution on the server:
 * - no cell with its id in the notebook → `unknown` (ignored);
 * - already applied by this page, or owned by one of this page's own futures
 *   (the page never went away) → skipped silently;
 * - still queued or running, same source → `pending` (`[*]`, outputs so far,
 *   then the live messages of its msg_id); other source → `edited`;
 * - finished before the file was last saved → `old`: the file already has
 *   what the user chose to keep (its outputs, or cleared since);
 * - finished after, source edited since it ran → `edited`: left alone;
 * - finished after, the cell already shows it → `unchanged`;
 * - otherwise → `fill` with its outputs and execution count (`aborted`: no
 *   outputs, no count — what the page would have shown had it been open).
 * Cells without a server record are never touched.
 */
import type { ICellExecution } from './api';

export type Output = Record<string, unknown>;

/** A notebook code cell as it is now. */
export interface ICellState {
  id: string;
  source: string;
  executionCount: number | null;
  outputs: Output[];
  /** msg_id of the execution this page itself is running for the cell. */
  ownMsgId?: string | null;
}

export type SkipReason = 'edited' | 'old' | 'unchanged' | 'own' | 'applied';

export type CellAction =
  | {
      kind: 'fill';
      cellId: string;
      msgId: string;
      status: 'ok' | 'error' | 'aborted';
      executionCount: number | null;
      outputs: Output[];
    }
  | {
      kind: 'pending';
      cellId: string;
      msgId: string;
      status: 'queued' | 'running';
      /** Known once it started (execute_input): the count it ends with. */
      executionCount: number | null;
      outputs: Output[];
    }
  | { kind: 'skip'; cellId: string; msgId: string; reason: SkipReason };

export interface IRestorePlan {
  /** One action per cell that has a server record, in notebook order. */
  actions: CellAction[];
  /** Cell ids the server ran that this notebook no longer has. */
  unknown: string[];
}

export interface IRestoreInput {
  cells: ICellState[];
  executions: ICellExecution[];
  /** ms since epoch of the notebook file's last save (contents `last_modified`). */
  lastSaved: number | null;
  /** msg_ids this page has already restored (or reported): never twice. */
  applied?: ReadonlySet<string>;
}

export function planRestore(input: IRestoreInput): IRestorePlan {
  const byId = new Map<string, ICellExecution>();
  for (const execution of input.executions) {
    if (execution.cell_id) {
      byId.set(execution.cell_id, execution); // the latest wins
    }
  }
  const cellIds = new Set(input.cells.map(cell => cell.id));
  const actions: CellAction[] = [];
  for (const cell of input.cells) {
    const execution = byId.get(cell.id);
    if (execution) {
      actions.push(decide(cell, execution, input));
    }
  }
  const unknown = [...byId.keys()].filter(id => !cellIds.has(id));
  return { actions, unknown };
}

function decide(
  cell: ICellState,
  execution: ICellExecution,
  input: IRestoreInput
): CellAction {
  const ids = { cellId: cell.id, msgId: execution.msg_id };
  const skip = (reason: SkipReason): CellAction => ({
    kind: 'skip',
    ...ids,
    reason
  });
  if (input.applied?.has(execution.msg_id)) {
    return skip('applied');
  }
  if (cell.ownMsgId && cell.ownMsgId === execution.msg_id) {
    return skip('own');
  }
  const edited = execution.code !== cell.source;
  const status = execution.status;
  if (status === 'queued' || status === 'running') {
    return edited
      ? skip('edited')
      : {
          kind: 'pending',
          ...ids,
          status,
          executionCount: execution.execution_count ?? null,
          outputs: execution.outputs ?? []
        };
  }
  const finished =
    execution.finished_at ?? execution.started_at ?? execution.queued_at;
  if (input.lastSaved !== null && finished <= input.lastSaved) {
    return skip('old');
  }
  if (edited) {
    return skip('edited');
  }
  const aborted = status === 'aborted';
  const executionCount = aborted ? null : execution.execution_count;
  const outputs = aborted ? [] : (execution.outputs ?? []);
  if (
    cell.executionCount === executionCount &&
    outputsEqual(cell.outputs, outputs)
  ) {
    return skip('unchanged');
  }
  return { kind: 'fill', ...ids, status, executionCount, outputs };
}

/** The one-line notice for the user, or null when nothing came back. */
export function summarize(plan: IRestorePlan): string | null {
  let restored = 0;
  let aborted = 0;
  let pending = 0;
  let edited = 0;
  for (const action of plan.actions) {
    if (action.kind === 'fill') {
      if (action.status === 'aborted') {
        aborted++;
      } else {
        restored++;
      }
    } else if (action.kind === 'pending') {
      pending++;
    } else if (action.reason === 'edited') {
      edited++;
    }
  }
  const cells = (n: number) => `${n} cell${n === 1 ? '' : 's'}`;
  const parts: string[] = [];
  if (restored) {
    parts.push(
      `${cells(restored)} ran while this notebook was closed; outputs restored`
    );
  }
  if (pending) {
    parts.push(`${cells(pending)} still queued or running`);
  }
  if (aborted) {
    parts.push(`${cells(aborted)} did not run (aborted)`);
  }
  if (edited) {
    parts.push(
      `${edited} edited ${edited === 1 ? 'cell was' : 'cells were'} left alone`
    );
  }
  return parts.length ? parts.join('; ') : null;
}

/** nbformat outputs compared as saved: multiline strings joined, no transient. */
export function outputsEqual(a: Output[], b: Output[]): boolean {
  return (
    a.length === b.length &&
    a.every((output, i) => deepEqual(normalize(output), normalize(b[i])))
  );
}

function normalize(output: Output): unknown {
  const copy: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(output)) {
    if (key === 'transient' || value === undefined) {
      continue;
    }
    if (key === 'text' && Array.isArray(value)) {
      copy[key] = value.join('');
    } else if (key === 'data' && value && typeof value === 'object') {
      copy[key] = Object.fromEntries(
        Object.entries(value as Record<string, unknown>).map(([mime, v]) => [
          mime,
          Array.isArray(v) && v.every(x => typeof x === 'string')
            ? v.join('')
            : v
        ])
      );
    } else if (key === 'metadata' && isEmptyObject(value)) {
      continue; // {} and absent are the same
    } else {
      copy[key] = value;
    }
  }
  return copy;
}

function isEmptyObject(value: unknown): boolean {
  return (
    !!value &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    Object.keys(value).length === 0
  );
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) {
    return true;
  }
  if (!a || !b || typeof a !== 'object' || typeof b !== 'object') {
    return false;
  }
  if (Array.isArray(a) !== Array.isArray(b)) {
    return false;
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return (
    ka.length === kb.length &&
    ka.every(k =>
      deepEqual(
        (a as Record<string, unknown>)[k],
        (b as Record<string, unknown>)[k]
      )
    )
  );
}
