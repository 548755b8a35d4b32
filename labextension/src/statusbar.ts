/**
 * Status bar item for the current notebook: "3 queued · busy 12s · 230 MiB".
 * Plain DOM: it has no controls, just three text spans updated in place.
 */
import { ILabShell } from '@jupyterlab/application';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';
import { Widget } from '@lumino/widgets';

import {
  describeStatus,
  findSessionFor,
  formatBytes,
  ISessionEntry,
  SessionStore
} from './model';

export interface ISessionStatusItemOptions {
  store: SessionStore;
  tracker: INotebookTracker;
  /** Null outside JupyterLab (e.g. Notebook 7): then the last notebook counts. */
  labShell: ILabShell | null;
  /** Called when the item is clicked (shows the sidebar panel). */
  onClick?: () => void;
}

export class SessionStatusItem extends Widget {
  constructor(options: ISessionStatusItemOptions) {
    super();
    this._options = options;
    this.addClass('jp-SessionExt-statusItem');
    this.node.title =
      'Kernel session of this notebook (click for all sessions)';
    for (const span of [this._queue, this._time, this._memory]) {
      this.node.appendChild(span);
    }
    this._queue.className = 'jp-SessionExt-statusQueue';
    this._time.className = 'jp-SessionExt-statusTime';
    this._memory.className = 'jp-SessionExt-statusMemory';
    this.node.addEventListener('click', () => options.onClick?.());

    options.store.changed.connect(this.refresh, this);
    options.tracker.currentChanged.connect(this._onCurrentNotebook, this);
    options.labShell?.currentChanged.connect(this.refresh, this);
    this._onCurrentNotebook();
    // Busy/idle time ticks locally between server events.
    this._ticker = setInterval(() => this.refresh(), 1000);
  }

  /** Emitted when the item should appear or disappear. */
  get activeStateChanged(): ISignal<this, void> {
    return this._activeStateChanged;
  }

  /** Whether a notebook is in focus and its kernel is a known session. */
  get isActiveItem(): boolean {
    return this._entry !== null;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    clearInterval(this._ticker);
    this._watch(null);
    Signal.clearData(this);
    super.dispose();
  }

  /** Recompute which session is current and redraw. */
  refresh(): void {
    const panel = this._currentNotebook();
    const session = panel?.sessionContext.session;
    const entry = panel
      ? findSessionFor(this._options.store, {
          sessionId: session?.id,
          kernelId: session?.kernel?.id
        })
      : null;
    const wasActive = this.isActiveItem;
    this._entry = entry;
    this._render();
    if (wasActive !== this.isActiveItem) {
      this._activeStateChanged.emit();
    }
  }

  private _currentNotebook(): NotebookPanel | null {
    const { tracker, labShell } = this._options;
    const nb = tracker.currentWidget;
    if (!nb) {
      return null;
    }
    // In JupyterLab, only show it while the notebook is the focused document.
    if (labShell && labShell.currentWidget !== nb) {
      return null;
    }
    return nb;
  }

  private _onCurrentNotebook(): void {
    this._watch(this._options.tracker.currentWidget);
    this.refresh();
  }

  /** Follow kernel/session changes of the current notebook. */
  private _watch(panel: NotebookPanel | null): void {
    const ctx = this._watched?.sessionContext;
    if (ctx && !ctx.isDisposed) {
      ctx.sessionChanged.disconnect(this.refresh, this);
      ctx.kernelChanged.disconnect(this.refresh, this);
    }
    this._watched = panel;
    if (panel) {
      panel.sessionContext.sessionChanged.connect(this.refresh, this);
      panel.sessionContext.kernelChanged.connect(this.refresh, this);
    }
  }

  private _render(): void {
    const entry = this._entry;
    if (!entry) {
      this.node.removeAttribute('data-session-id');
      this.node.removeAttribute('data-status');
      this._queue.textContent =
        this._time.textContent =
        this._memory.textContent =
          '';
      return;
    }
    const s = entry.session;
    this.node.dataset.sessionId = s.session_id;
    this.node.dataset.status = s.status;
    this._queue.textContent = `${entry.queue.length} queued`;
    this._time.textContent = describeStatus(entry);
    this._memory.textContent = s.resource_usage
      ? formatBytes(s.resource_usage.memory_bytes)
      : '';
  }

  private _options: ISessionStatusItemOptions;
  private _entry: ISessionEntry | null = null;
  private _watched: NotebookPanel | null = null;
  private _ticker: ReturnType<typeof setInterval>;
  private _queue = document.createElement('span');
  private _time = document.createElement('span');
  private _memory = document.createElement('span');
  private _activeStateChanged = new Signal<this, void>(this);
}
