/**
 * Puts into an open notebook what its cells produced while no page had it
 * open: on open, and whenever its kernel connection comes back or changes,
 * fetch the supervisor's `/sessions/{id}/cells`, apply `planRestore`'s
 * actions to the cell models, keep cells still queued or running at `[*]`
 * fed by their live messages (`LiveOutputs`), and tell the user once.
 *
 * Only the in-memory model changes (the notebook becomes dirty, as after any
 * run); the file changes when the user saves. With real-time collaboration
 * (the document model is `collaborative`) it does nothing: the shared
 * document is the collaboration server's, and writing outputs into it from
 * every open page would duplicate them.
 */
import { Notification } from '@jupyterlab/apputils';
import type { CodeCell, ICodeCellModel } from '@jupyterlab/cells';
import type { DocumentRegistry } from '@jupyterlab/docregistry';
import {
  INotebookModel,
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import type { Kernel, KernelMessage } from '@jupyterlab/services';

import { ICellExecution, SupervisorClient, SupervisorError } from './api';
import { ILiveTarget, LiveOutputs } from './liveOutputs';
import {
  CellAction,
  ICellState,
  Output,
  outputsEqual,
  planRestore,
  summarize
} from './restore';

/** Messages that may be replayed safely after the fetch (no outputs). */
const REPLAYABLE = new Set(['execute_input', 'execute_reply', 'status']);
const RECONCILE_TRIES = 3;
const RECONCILE_DELAY_MS = 400;

export function restoreNotebookOutputs(
  tracker: INotebookTracker,
  client: SupervisorClient,
  notify: (message: string) => void = message =>
    void Notification.info(message, { autoClose: 8000 })
): void {
  // One per document: views of the same notebook share its model and kernel.
  const attached = new WeakMap<
    DocumentRegistry.IContext<any>,
    NotebookRestore
  >();
  const attach = (panel: NotebookPanel) => {
    const context = panel.context;
    if (!attached.has(context)) {
      const views = () => tracker.filter(p => p.context === context);
      attached.set(
        context,
        new NotebookRestore(context, views, client, notify)
      );
    }
  };
  tracker.forEach(attach);
  tracker.widgetAdded.connect((_, panel) => attach(panel));
  // The user runs a restored cell again: JupyterLab owns it from now on.
  NotebookActions.executionScheduled.connect((_, { notebook, cell }) => {
    const panel = notebook.parent;
    if (panel instanceof NotebookPanel) {
      attached.get(panel.context)?.release(cell.model as ICodeCellModel);
    }
  });
}

class NotebookRestore {
  constructor(
    private readonly context: DocumentRegistry.IContext<INotebookModel>,
    private readonly views: () => NotebookPanel[],
    private readonly client: SupervisorClient,
    private readonly notify: (message: string) => void
  ) {
    const sessionContext = context.sessionContext;
    sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    sessionContext.connectionStatusChanged.connect(this._onConnection, this);
    sessionContext.statusChanged.connect(this._onStatus, this);
    this._listen(sessionContext.session?.kernel ?? null);
    void Promise.all([context.ready, sessionContext.ready]).then(() =>
      this._schedule()
    );
    context.disposed.connect(() => {
      this._listen(null);
      this._live.abandonAll();
      this._disposed = true;
    });
  }

  /** Stop feeding the cell its restored execution's messages. */
  release(model: ICodeCellModel): void {
    const target = this._targets.get(model);
    if (target) {
      this._live.forget(target);
      this._targets.delete(model);
    }
  }

  private _onKernelChanged(
    _: unknown,
    args: { newValue: Kernel.IKernelConnection | null }
  ): void {
    this._live.abandonAll();
    this._listen(args.newValue);
    if (args.newValue) {
      this._schedule();
    }
  }

  private _onConnection(_: unknown, status: Kernel.ConnectionStatus): void {
    const was = this._connection;
    this._connection = status;
    if (status === 'connected' && was !== 'connected' && was !== null) {
      this._schedule(); // back after a disconnection
    }
  }

  private _onStatus(_: unknown, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting') {
      this._live.abandonAll();
    } else if (status === 'dead') {
      this._live.abandonAll();
    }
  }

  private _listen(kernel: Kernel.IKernelConnection | null): void {
    this._kernel?.anyMessage.disconnect(this._onAnyMessage, this);
    this._kernel = kernel;
    kernel?.anyMessage.connect(this._onAnyMessage, this);
  }

  private _onAnyMessage(
    _: Kernel.IKernelConnection,
    args: Kernel.IAnyMessageArgs
  ): void {
    if (args.direction !== 'recv') {
      return;
    }
    if (this._buffer) {
      this._buffer.push(args.msg);
      return;
    }
    this._handle(args.msg);
  }

  private _handle(msg: KernelMessage.IMessage): void {
    try {
      this._live.handle(msg as any);
    } catch (err) {
      console.warn('session_ext: a live output could not be applied', err);
    }
  }

  /** One restore at a time; a trigger during one runs one more after it. */
  private _schedule(): void {
    if (this._queued) {
      return;
    }
    this._queued = true;
    this._chain = this._chain.then(async () => {
      this._queued = false;
      try {
        await this._restore();
      } catch (err) {
        console.warn('session_ext: restoring cell outputs failed', err);
      }
    });
  }

  private async _restore(): Promise<void> {
    await this.context.ready;
    const session = this.context.sessionContext.session;
    const model = this.context.model;
    if (this._disposed || !session?.kernel || !model) {
      return;
    }
    if (model.collaborative) {
      return; // real-time collaboration: see the module comment
    }
    this._buffer = [];
    let executions: ICellExecution[];
    try {
      executions = (await this.client.getCells(session.id)).cells ?? [];
    } catch (err) {
      this._flushBuffer(false);
      if (err instanceof SupervisorError && err.status === 404) {
        return; // not a session the supervisor knows (yet)
      }
      throw err;
    }
    let message: string | null = null;
    try {
      if (this._disposed) {
        return;
      }
      const models = this._codeCells();
      const saved = Date.parse(this.context.contentsModel?.last_modified ?? '');
      const plan = planRestore({
        cells: [...models.values()].map(entry => entry.state),
        executions,
        lastSaved: Number.isNaN(saved) ? null : saved,
        applied: this._applied
      });
      for (const action of plan.actions) {
        const entry = models.get(action.cellId);
        if (entry) {
          this._apply(action, entry.model);
        }
      }
      message = summarize(plan);
    } finally {
      this._flushBuffer(true); // whatever happened: never buffer for ever
    }
    if (message) {
      this.notify(message);
    }
  }

  /** Replay what arrived during the fetch: outputs are in the fetched record. */
  private _flushBuffer(replay: boolean): void {
    const buffered = this._buffer ?? [];
    this._buffer = null;
    if (replay) {
      for (const msg of buffered) {
        if (REPLAYABLE.has(msg.header.msg_type)) {
          this._handle(msg);
        }
      }
    }
  }

  private _codeCells(): Map<
    string,
    { model: ICodeCellModel; state: ICellState }
  > {
    const own = new Map<ICodeCellModel, string | null>();
    for (const widget of this.views().flatMap(view => view.content.widgets)) {
      if (widget.model.type === 'code') {
        const future = (widget as CodeCell).outputArea?.future;
        own.set(
          widget.model as ICodeCellModel,
          future && !future.isDisposed ? future.msg.header.msg_id : null
        );
      }
    }
    const cells = new Map<
      string,
      { model: ICodeCellModel; state: ICellState }
    >();
    for (const cell of this.context.model.cells) {
      if (cell.type !== 'code') {
        continue;
      }
      const model = cell as ICodeCellModel;
      cells.set(model.id, {
        model,
        state: {
          id: model.id,
          source: model.sharedModel.getSource(),
          executionCount: model.executionCount,
          outputs: model.outputs.toJSON() as unknown as Output[],
          ownMsgId: own.get(model) ?? null
        }
      });
    }
    return cells;
  }

  private _apply(action: CellAction, model: ICodeCellModel): void {
    if (action.kind === 'skip') {
      if (action.reason === 'edited') {
        this._applied.add(action.msgId); // reported once
      }
      return;
    }
    this._applied.add(action.msgId);
    this.release(model);
    setOutputs(model, action.outputs);
    model.trusted = true; // as after a run in this page
    if (action.kind === 'fill') {
      model.executionCount = action.executionCount;
      model.executionState = 'idle';
      return;
    }
    model.executionCount = null;
    model.executionState = 'running'; // the prompt shows [*]
    const target: ILiveTarget = {
      outputs: model.outputs,
      done: count => {
        if (!model.isDisposed) {
          model.executionCount = count;
          model.executionState = 'idle';
        }
      }
    };
    this._targets.set(model, target);
    this._settling.set(action.msgId, model);
    this._live.watch(
      action.msgId,
      target,
      action.outputs,
      action.executionCount
    );
  }

  /**
   * A watched execution is over: make the cell equal to the server's final
   * record (messages between the fetch and the subscription are in it).
   */
  private async _reconcile(msgId: string): Promise<void> {
    const model = this._settling.get(msgId);
    this._settling.delete(msgId);
    if (!model) {
      return;
    }
    const target = this._targets.get(model);
    const session = this.context.sessionContext.session;
    // Still ours: not run again by the user (release), nor restored anew.
    const ours = () => !model.isDisposed && this._targets.get(model) === target;
    for (let i = 0; i < RECONCILE_TRIES && session && target; i++) {
      await new Promise(resolve => setTimeout(resolve, RECONCILE_DELAY_MS));
      let record: ICellExecution | undefined;
      try {
        const { cells } = await this.client.getCells(session.id);
        record = cells.find(cell => cell.msg_id === msgId);
      } catch {
        break;
      }
      if (!ours() || !record) {
        break;
      }
      if (record.status === 'queued' || record.status === 'running') {
        continue;
      }
      const outputs = record.status === 'aborted' ? [] : record.outputs;
      const current = model.outputs.toJSON() as unknown as Output[];
      if (!outputsEqual(current, outputs)) {
        setOutputs(model, outputs);
      }
      if (record.status !== 'aborted' && model.executionCount === null) {
        model.executionCount = record.execution_count;
      }
      break;
    }
    if (ours()) {
      this._targets.delete(model);
    }
  }

  private _live = new LiveOutputs(msgId => void this._reconcile(msgId));
  private _targets = new Map<ICodeCellModel, ILiveTarget>();
  private _settling = new Map<string, ICodeCellModel>();
  private _applied = new Set<string>();
  private _buffer: KernelMessage.IMessage[] | null = null;
  private _kernel: Kernel.IKernelConnection | null = null;
  private _connection: Kernel.ConnectionStatus | null = null;
  private _chain: Promise<void> = Promise.resolve();
  private _queued = false;
  private _disposed = false;
}

function setOutputs(model: ICodeCellModel, outputs: Output[]): void {
  model.outputs.clear();
  for (const output of outputs) {
    model.outputs.add(output as any);
  }
}
