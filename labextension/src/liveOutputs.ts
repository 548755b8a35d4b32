/**
 * Live outputs of executions this page did not start: a notebook reopened
 * while its cells still run receives their iopub (every kernel websocket
 * does) and, re-bound by the server, their execute_reply — but JupyterLab
 * routes neither to a cell (no future of its own has that msg_id). This puts
 * them into the cells the restore marked pending, as a cell's output area
 * would: streams merged, clear_output (with wait), display updates by
 * display_id, and the execution count at the end.
 */
import type { Output } from './restore';

/** What of an output area model this needs (OutputAreaModel has it). */
export interface IOutputsLike {
  readonly length: number;
  add(output: Output): number;
  set(index: number, output: Output): void;
  clear(wait?: boolean): void;
}

/** A cell that receives an execution's live outputs. */
export interface ILiveTarget {
  readonly outputs: IOutputsLike;
  /** The execution ended: its count (null when aborted or unknown). */
  done(executionCount: number | null): void;
}

/** The parts of a kernel message this reads. */
export interface ILiveMessage {
  channel?: string;
  header: { msg_type: string };
  parent_header: { msg_id?: string } | Record<string, never>;
  content: Record<string, any>;
}

interface IWatch {
  target: ILiveTarget;
  displays: Map<string, number[]>;
  executionCount: number | null;
  done: boolean;
}

export class LiveOutputs {
  /** `settled(msgId)`: called once a watched execution is over (idle). */
  constructor(private readonly settled: (msgId: string) => void = () => {}) {}

  get size(): number {
    return this._watches.size;
  }

  has(msgId: string): boolean {
    return this._watches.has(msgId);
  }

  /**
   * Route msgId's messages to target, whose outputs are `initial` so far;
   * `executionCount`: its count when it already started (its execute_input
   * came before this page listened, and its reply may go to another page).
   */
  watch(
    msgId: string,
    target: ILiveTarget,
    initial: Output[] = [],
    executionCount: number | null = null
  ): void {
    const displays = new Map<string, number[]>();
    initial.forEach((output, index) => remember(displays, output, index));
    this._watches.set(msgId, { target, displays, executionCount, done: false });
  }

  /** Stop feeding target (the user ran the cell again, or it is gone). */
  forget(target: ILiveTarget): void {
    for (const [msgId, watch] of this._watches) {
      if (watch.target === target) {
        this._watches.delete(msgId);
      }
    }
  }

  /** The kernel restarted or died: nothing more will come; end every `[*]`. */
  abandonAll(): void {
    const watches = [...this._watches.values()];
    this._watches.clear();
    for (const watch of watches) {
      if (!watch.done) {
        watch.target.done(watch.executionCount);
      }
    }
  }

  /** Apply one received kernel message; true when it belonged to a watch. */
  handle(msg: ILiveMessage): boolean {
    const msgId = (msg.parent_header as { msg_id?: string }).msg_id;
    const watch = msgId ? this._watches.get(msgId) : undefined;
    if (!msgId || !watch) {
      return false;
    }
    const content = msg.content ?? {};
    const outputs = watch.target.outputs;
    switch (msg.header.msg_type) {
      case 'execute_input':
        watch.executionCount = content.execution_count ?? null;
        break;
      case 'stream':
        this._add(watch, {
          output_type: 'stream',
          name: content.name,
          text: content.text
        });
        break;
      case 'display_data':
      case 'execute_result':
      case 'error': {
        const output: Output = { output_type: msg.header.msg_type, ...content };
        delete output.transient;
        const index = this._add(watch, output);
        remember(watch.displays, { transient: content.transient }, index);
        break;
      }
      case 'update_display_data': {
        const id = content.transient?.display_id;
        for (const index of watch.displays.get(id) ?? []) {
          if (index < outputs.length) {
            outputs.set(index, {
              output_type: 'display_data',
              data: content.data,
              metadata: content.metadata ?? {}
            });
          }
        }
        break;
      }
      case 'clear_output':
        outputs.clear(!!content.wait);
        if (!content.wait) {
          watch.displays.clear();
        } else {
          this._clearNext.add(watch);
        }
        break;
      case 'execute_reply':
        if (content.status === 'aborted') {
          this._finish(msgId, watch, null, true);
        } else {
          const count = content.execution_count ?? watch.executionCount;
          this._finish(msgId, watch, count, false); // iopub may still follow
        }
        break;
      case 'status':
        if (content.execution_state === 'idle') {
          this._finish(msgId, watch, watch.executionCount, true);
        }
        break;
      default:
        break;
    }
    return true;
  }

  private _add(watch: IWatch, output: Output): number {
    if (this._clearNext.delete(watch)) {
      watch.displays.clear(); // the model clears itself on this add
    }
    return watch.target.outputs.add(output) - 1;
  }

  private _finish(
    msgId: string,
    watch: IWatch,
    count: number | null,
    settle: boolean
  ): void {
    if (!watch.done) {
      watch.done = true;
      watch.executionCount = count;
      watch.target.done(count);
    }
    if (settle) {
      this._watches.delete(msgId);
      this._clearNext.delete(watch);
      this.settled(msgId);
    }
  }

  private _watches = new Map<string, IWatch>();
  private _clearNext = new Set<IWatch>();
}

function remember(
  displays: Map<string, number[]>,
  output: Output,
  index: number
): void {
  const transient = output.transient as { display_id?: string } | undefined;
  const id = transient?.display_id;
  if (id) {
    displays.set(id, [...(displays.get(id) ?? []), index]);
  }
}
