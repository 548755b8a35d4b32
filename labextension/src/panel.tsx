/**
 * The "Kernel Sessions" sidebar. React (through ReactWidget) so that the
 * once-a-second re-render of the ticking clocks only touches the text that
 * changed and never swaps a button out from under the user's pointer.
 */
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import {
  caretDownIcon,
  caretRightIcon,
  closeIcon,
  consoleIcon,
  LabIcon,
  ReactWidget,
  refreshIcon,
  stopIcon
} from '@jupyterlab/ui-components';
import { CommandRegistry } from '@lumino/commands';
import { Message } from '@lumino/messaging';
import * as React from 'react';

import { SupervisorClient } from './api';
import { ConnectionState, EventStream } from './events';
import { sessionsIcon } from './icons';
import { AgentBadge, copyText, McpView, McpWorkspaceInfo } from './mcp';
import {
  canOpenConsole,
  describeStatus,
  documentPath,
  firstLine,
  formatBytes,
  formatCpu,
  IActiveSession,
  isRunning,
  ISessionEntry,
  remotePlacement,
  SessionStore
} from './model';

/** How many pending cells a row lists; the rest are counted. */
const MAX_LISTED = 50;

type ServerAction = 'interrupt' | 'restart' | 'shutdown';

export interface ISessionsPanelOptions {
  store: SessionStore;
  stream: EventStream;
  client: SupervisorClient;
  commands: CommandRegistry;
  /** Show the MCP workspace of the server's notebooks (its URL, a copy button). */
  mcp?: boolean;
}

export class SessionsPanel extends ReactWidget {
  constructor(options: ISessionsPanelOptions) {
    super();
    this._options = options;
    this.id = 'session-ext:panel';
    this.title.icon = sessionsIcon;
    this.title.caption = 'Kernel Sessions';
    this.addClass('jp-SessionExt-panel');
    options.store.changed.connect(this._refresh, this);
    options.stream.stateChanged.connect(this._refresh, this);
    // The clocks tick locally; the interval only re-renders while visible.
    this._ticker = setInterval(() => this._refresh(), 1000);
    this._mcp = new McpWorkspaceInfo(options.client, () => this._refresh());
    if (options.mcp) {
      void this._mcp.load().catch(() => undefined);
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    clearInterval(this._ticker);
    this._options.store.changed.disconnect(this._refresh, this);
    this._options.stream.stateChanged.disconnect(this._refresh, this);
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this.update();
  }

  protected render(): JSX.Element {
    const { store, stream } = this._options;
    return (
      <SessionsView
        entries={store.entries()}
        loaded={store.loaded}
        connection={stream.state}
        now={Date.now()}
        expanded={this._expanded}
        inFlight={this._inFlight}
        handlers={this._handlers}
        mcp={
          <McpView
            workspace={this._mcp.workspace}
            copied={this._mcpCopied}
            onCopy={text => {
              copyText(text);
              this._mcpCopied = true;
              this.update();
            }}
          />
        }
      />
    );
  }

  private _refresh(): void {
    if (this.isVisible) {
      this.update();
    }
  }

  private async _serverAction(
    session: IActiveSession,
    action: ServerAction
  ): Promise<void> {
    const { client } = this._options;
    if (action === 'shutdown') {
      const result = await showDialog({
        title: 'Shut down kernel session?',
        body: `Shut down "${session.display_name}" (${session.session_id}) and remove the session?`,
        buttons: [
          Dialog.cancelButton(),
          Dialog.warnButton({ label: 'Shut Down' })
        ]
      });
      if (!result.button.accept) {
        return;
      }
    }
    await this._track(`${session.session_id}:${action}`, async () => {
      try {
        await client[action](session.session_id);
      } catch (err) {
        // Not awaited: the button is usable again while the dialog shows.
        void showErrorMessage(
          `Could not ${action} the session`,
          messageOf(err)
        );
      }
    });
  }

  private async _cancel(session: IActiveSession, msgId: string): Promise<void> {
    await this._track(`${session.session_id}:cancel:${msgId}`, async () => {
      try {
        await this._options.client.cancelQueued(session.session_id, msgId);
      } catch (err) {
        void showErrorMessage(
          'Could not cancel the queued cell',
          messageOf(err)
        );
      }
    });
  }

  /** Disable the button of an action while its request is in flight. */
  private async _track(key: string, fn: () => Promise<void>): Promise<void> {
    if (this._inFlight.has(key)) {
      return;
    }
    this._inFlight.add(key);
    this.update();
    try {
      await fn();
    } finally {
      this._inFlight.delete(key);
      this.update();
    }
  }

  private _handlers: ISessionHandlers = {
    action: (session, action) => void this._serverAction(session, action),
    cancel: (session, msgId) => void this._cancel(session, msgId),
    open: path =>
      void this._options.commands.execute('docmanager:open', { path }),
    console: session =>
      void this._options.commands
        .execute('console:create', {
          kernelPreference: { id: session.kernel_id }
        })
        .catch(err =>
          showErrorMessage('Could not open a console', messageOf(err))
        ),
    toggleQueue: sessionId => {
      if (!this._expanded.delete(sessionId)) {
        this._expanded.add(sessionId);
      }
      this.update();
    },
    // Reconnecting makes the server send a fresh snapshot.
    refresh: () => {
      this._options.stream.reconnect();
      if (this._options.mcp) {
        void this._mcp.load().catch(() => undefined);
      }
    }
  };

  private _options: ISessionsPanelOptions;
  private _ticker: ReturnType<typeof setInterval>;
  /** Sessions whose pending-cell list is open. */
  private _expanded = new Set<string>();
  private _inFlight = new Set<string>();
  private _mcp: McpWorkspaceInfo;
  private _mcpCopied = false;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

// ---------------------------------------------------------------------------
// React view
// ---------------------------------------------------------------------------

interface ISessionHandlers {
  action(session: IActiveSession, action: ServerAction): void;
  cancel(session: IActiveSession, msgId: string): void;
  open(path: string): void;
  console(session: IActiveSession): void;
  toggleQueue(sessionId: string): void;
  refresh(): void;
}

interface ISessionsViewProps {
  entries: ISessionEntry[];
  loaded: boolean;
  connection: ConnectionState;
  now: number;
  expanded: Set<string>;
  inFlight: Set<string>;
  handlers: ISessionHandlers;
  /** The MCP box (session_ext's agents), under the header. */
  mcp?: JSX.Element;
}

const CONNECTION_LABEL: { [state in ConnectionState]: string } = {
  open: 'live',
  connecting: 'connecting…',
  closed: 'disconnected, retrying…'
};

function SessionsView(props: ISessionsViewProps): JSX.Element {
  const { entries, loaded, connection, handlers } = props;
  return (
    <div className="jp-SessionExt-root">
      <header className="jp-SessionExt-header">
        <h2 className="jp-SessionExt-title">Kernel Sessions</h2>
        <span
          className="jp-SessionExt-connection"
          data-state={connection}
          title="State of the /supervisor/events connection"
        >
          {CONNECTION_LABEL[connection]}
        </span>
        <ActionButton
          action="refresh"
          icon={refreshIcon}
          title="Reconnect and reload all sessions"
          onClick={handlers.refresh}
        />
      </header>
      {props.mcp}
      {entries.length === 0 ? (
        <div className="jp-SessionExt-empty">
          {loaded ? 'No kernel sessions.' : 'Loading kernel sessions…'}
        </div>
      ) : (
        <ul className="jp-SessionExt-list">
          {entries.map(entry => (
            <SessionItem
              key={entry.session.session_id}
              {...props}
              entry={entry}
            />
          ))}
        </ul>
      )}
    </div>
  );
}

function SessionItem(
  props: ISessionsViewProps & { entry: ISessionEntry }
): JSX.Element {
  const { entry, now, expanded, inFlight, handlers } = props;
  const s = entry.session;
  const id = s.session_id;
  const path = documentPath(s);
  const running = isRunning(s.status);
  const remote = remotePlacement(s);
  const busy = (action: string) => inFlight.has(`${id}:${action}`);
  return (
    <li
      className="jp-SessionExt-session"
      data-session-id={id}
      data-status={s.status}
      data-mode={s.session_mode}
    >
      <div className="jp-SessionExt-row">
        <span className="jp-SessionExt-name" title={id}>
          {s.display_name || s.kernel_name || id}
        </span>
        <span className="jp-SessionExt-language">{s.language}</span>
        <span className="jp-SessionExt-mode">{s.session_mode}</span>
        {remote && (
          <span className="jp-SessionExt-remote" title={remote.title}>
            {remote.label}
          </span>
        )}
      </div>
      {path !== null && (
        <a
          className="jp-SessionExt-path"
          href="#"
          title={`Open ${path}`}
          onClick={ev => {
            ev.preventDefault();
            handlers.open(path);
          }}
        >
          {path}
        </a>
      )}
      <div className="jp-SessionExt-row">
        <span className="jp-SessionExt-status" data-status={s.status}>
          {describeStatus(entry, now)}
        </span>
        {s.waiting_input && (
          <span className="jp-SessionExt-waiting">waiting for input</span>
        )}
        <span className="jp-SessionExt-cpu" title="CPU">
          {s.resource_usage ? formatCpu(s.resource_usage.cpu_percent) : '—'}
        </span>
        <span className="jp-SessionExt-memory" title="Memory">
          {s.resource_usage ? formatBytes(s.resource_usage.memory_bytes) : '—'}
        </span>
      </div>
      {s.tags && s.tags.length > 0 && (
        <div className="jp-SessionExt-tags">
          {s.tags.map(tag => (
            <span key={tag} className="jp-SessionExt-tag" data-tag={tag}>
              {tag}
            </span>
          ))}
        </div>
      )}
      <QueueView
        entry={entry}
        expanded={expanded.has(id)}
        isCancelling={msgId => busy(`cancel:${msgId}`)}
        handlers={handlers}
      />
      <div className="jp-SessionExt-actions">
        <ActionButton
          action="interrupt"
          icon={stopIcon}
          title="Interrupt the kernel (also drops the pending cells)"
          disabled={!running || busy('interrupt')}
          onClick={() => handlers.action(s, 'interrupt')}
        />
        <ActionButton
          action="restart"
          icon={refreshIcon}
          title={running ? 'Restart the kernel' : 'Start the kernel'}
          disabled={busy('restart')}
          onClick={() => handlers.action(s, 'restart')}
        />
        <ActionButton
          action="shutdown"
          icon={closeIcon}
          title="Shut down the kernel and remove the session"
          disabled={busy('shutdown')}
          onClick={() => handlers.action(s, 'shutdown')}
        />
        {canOpenConsole(s) && (
          <ActionButton
            action="console"
            icon={consoleIcon}
            title="Open a console attached to this kernel"
            onClick={() => handlers.console(s)}
          />
        )}
      </div>
    </li>
  );
}

function QueueView(props: {
  entry: ISessionEntry;
  expanded: boolean;
  isCancelling: (msgId: string) => boolean;
  handlers: ISessionHandlers;
}): JSX.Element {
  const { entry, expanded, isCancelling, handlers } = props;
  const { queue, session } = entry;
  const listed = queue.pending.slice(0, MAX_LISTED);
  const unlisted = queue.length - listed.length;
  const open = expanded && queue.length > 0; // an empty queue shows collapsed
  return (
    <div className="jp-SessionExt-queueBox">
      {queue.active && (
        <div
          className="jp-SessionExt-activeCell"
          data-msg-id={queue.active.msgId}
          title={queue.active.code}
        >
          ▶ <AgentBadge agent={queue.active.agent} />
          <code>{firstLine(queue.active.code)}</code>
        </div>
      )}
      <button
        className="jp-SessionExt-queueToggle"
        data-action="toggle-queue"
        aria-expanded={open}
        disabled={queue.length === 0}
        onClick={() => handlers.toggleQueue(session.session_id)}
      >
        {open ? (
          <caretDownIcon.react tag="span" />
        ) : (
          <caretRightIcon.react tag="span" />
        )}
        <span className="jp-SessionExt-queueLength">{queue.length}</span> queued
      </button>
      {open && (
        <ol className="jp-SessionExt-queue">
          {listed.map(cell => (
            <li
              key={cell.msgId}
              className="jp-SessionExt-queuedCell"
              data-msg-id={cell.msgId}
              title={cell.code}
            >
              <AgentBadge agent={cell.agent} />
              <code>{firstLine(cell.code)}</code>
              <ActionButton
                action="cancel"
                icon={closeIcon}
                title="Cancel this queued cell"
                disabled={isCancelling(cell.msgId)}
                onClick={() => handlers.cancel(session, cell.msgId)}
              />
            </li>
          ))}
          {unlisted > 0 && (
            <li className="jp-SessionExt-queueMore">… and {unlisted} more</li>
          )}
        </ol>
      )}
    </div>
  );
}

function ActionButton(props: {
  action: string;
  icon: LabIcon;
  title: string;
  disabled?: boolean;
  onClick: () => void;
}): JSX.Element {
  return (
    <button
      className="jp-Button jp-mod-minimal jp-SessionExt-action"
      data-action={props.action}
      title={props.title}
      aria-label={props.title}
      disabled={props.disabled}
      onClick={props.onClick}
    >
      <props.icon.react tag="span" />
    </button>
  );
}
