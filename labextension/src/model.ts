/**
 * The DOM-free part of the extension: the wire types of the supervisor API,
 * the store that applies `/supervisor/events` frames, and small formatting
 * helpers. Everything here is unit tested (see test/model.test.ts).
 */
import { ISignal, Signal } from '@lumino/signaling';

// ---------------------------------------------------------------------------
// Wire types (what the server sends)
// ---------------------------------------------------------------------------

/** Statuses the server reports; kept open so a new one still renders. */
export type SessionStatus =
  | 'uninitialized'
  | 'starting'
  | 'idle'
  | 'busy'
  | 'offline'
  | 'exited'
  | string;

export type SessionMode = 'console' | 'notebook' | 'background' | string;

/** A full Jupyter message, as kept in `execution_queue`. */
export interface IJupyterMessage {
  header: { msg_id: string; msg_type?: string; [key: string]: unknown };
  parent_header?: { [key: string]: unknown } | null;
  metadata?: { [key: string]: unknown };
  content?: { code?: string; [key: string]: unknown };
  channel?: string;
}

export interface IResourceUsage {
  cpu_percent: number;
  memory_bytes: number;
  thread_count: number;
  sampling_period_ms: number;
  timestamp: number;
}

export interface IExecutionQueue {
  active: IJupyterMessage | null;
  /** Number of *pending* requests (the active one is not counted). */
  length: number;
  pending: IJupyterMessage[];
}

/**
 * Where a kernel runs, as its jupyter_client provisioner says (session_ext's
 * own field: older servers and Kallichore leave it out).
 */
export interface IProvisioner {
  name: string;
  /** A local process of the server's (only then are CPU and memory known). */
  local: boolean;
  /** The host, pod or container a remote provisioner put the kernel on. */
  host: string | null;
  /** The kernel's process id on its host. */
  pid: number | null;
}

export interface IActiveSession {
  session_id: string;
  argv: string[];
  process_id: number | null;
  username: string;
  display_name: string;
  language: string;
  interrupt_mode: 'signal' | 'message' | string;
  initial_env: { [key: string]: string };
  connected: boolean;
  started: string;
  session_mode: SessionMode;
  working_directory: string;
  notebook_uri: string | null;
  input_prompt: string;
  continuation_prompt: string;
  execution_queue: IExecutionQueue;
  status: SessionStatus;
  kernel_info: { [key: string]: unknown };
  resource_usage: IResourceUsage | null;
  idle_seconds: number;
  busy_seconds: number;
  socket_path: string | null;
  kernel_id: string;
  kernel_name: string | null;
  tags: string[];
  metadata: { [key: string]: unknown };
  last_activity: string | null;
  waiting_input: boolean;
  provisioner?: IProvisioner | null;
}

/** A queued request as the `queue` event and `GET .../queue` describe it. */
export interface IQueuedRequest {
  msg_id: string;
  code: string;
  /** Who queued it: `agent` for an MCP tool call (then `agent` is its name). */
  source?: string;
  agent?: string;
}

/** The frames of the `/supervisor/events` websocket that we understand. */
export type SupervisorEvent =
  | { event: 'snapshot'; sessions: IActiveSession[] }
  | { event: 'session_created'; session: IActiveSession }
  | { event: 'session_updated'; session: IActiveSession }
  | { event: 'session_deleted'; session_id: string }
  | {
      event: 'status';
      session_id: string;
      status: SessionStatus;
      reason?: string;
      timestamp?: number;
    }
  | {
      event: 'queue';
      session_id: string;
      length: number;
      active: IQueuedRequest | null;
      pending: IQueuedRequest[];
    }
  | {
      event: 'resource_usage';
      session_id: string;
      resource_usage: IResourceUsage | null;
    };

// ---------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------

/** One queued cell, reduced to what the UI shows. */
export interface IQueuedCell {
  msgId: string;
  code: string;
  /** The agent (MCP client) that queued it, if an agent did. */
  agent?: string;
}

/**
 * The queue in one shape: snapshots carry full Jupyter messages while `queue`
 * events carry `{msg_id, code}`, so both are normalised to this.
 */
export interface IQueueSummary {
  active: IQueuedCell | null;
  pending: IQueuedCell[];
  /** True number of pending requests; `pending` may be shorter (capped). */
  length: number;
}

/** What the store keeps per session. Entries are replaced, never mutated. */
export interface ISessionEntry {
  readonly session: IActiveSession;
  readonly queue: IQueueSummary;
  /**
   * Local time (ms) at which `session.idle_seconds` / `busy_seconds` were
   * true. The busy/idle clock ticks from here in the browser, so the UI needs
   * no polling; the local clock is used (not the server's timestamps) so a
   * skewed client clock cannot produce negative durations.
   */
  readonly since: number;
}

export class SessionStore {
  /** Emitted after every event that changed something. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** Whether a snapshot has been applied since the store was created. */
  get loaded(): boolean {
    return this._loaded;
  }

  get size(): number {
    return this._entries.size;
  }

  get(sessionId: string): ISessionEntry | undefined {
    return this._entries.get(sessionId);
  }

  /** Entries, oldest session first (stable order, so rows do not jump). */
  entries(): ISessionEntry[] {
    return [...this._entries.values()].sort(compareEntries);
  }

  /**
   * Apply one decoded websocket frame. Unknown event types, malformed frames
   * and events about sessions we do not know are ignored (returns false).
   */
  apply(frame: unknown, now: number = Date.now()): boolean {
    if (!isObject(frame) || typeof frame.event !== 'string') {
      return false;
    }
    const changed = this._apply(frame as SupervisorEvent, now);
    if (changed) {
      this._changed.emit();
    }
    return changed;
  }

  private _apply(ev: SupervisorEvent, now: number): boolean {
    switch (ev.event) {
      case 'snapshot': {
        if (!Array.isArray(ev.sessions)) {
          return false;
        }
        this._entries.clear();
        for (const s of ev.sessions) {
          if (isSession(s)) {
            this._entries.set(s.session_id, makeEntry(s, now));
          }
        }
        this._loaded = true;
        return true;
      }
      case 'session_created':
      case 'session_updated': {
        if (!isSession(ev.session)) {
          return false;
        }
        this._entries.set(ev.session.session_id, makeEntry(ev.session, now));
        return true;
      }
      case 'session_deleted':
        return this._entries.delete(ev.session_id);
      case 'status': {
        const entry = this._entries.get(ev.session_id);
        if (!entry || typeof ev.status !== 'string') {
          return false;
        }
        if (entry.session.status === ev.status) {
          // Same status again: keep the clock running rather than reset it.
          return false;
        }
        const session = {
          ...entry.session,
          status: ev.status,
          idle_seconds: 0,
          busy_seconds: 0,
          // The server leaves a status only by going somewhere else, so a
          // waiting input request cannot survive the kernel going idle/exited.
          waiting_input:
            ev.status === 'busy' ? entry.session.waiting_input : false
        };
        this._entries.set(ev.session_id, { ...entry, session, since: now });
        return true;
      }
      case 'queue': {
        const entry = this._entries.get(ev.session_id);
        if (!entry) {
          return false;
        }
        const queue = queueFromEvent(ev);
        this._entries.set(ev.session_id, { ...entry, queue });
        return true;
      }
      case 'resource_usage': {
        const entry = this._entries.get(ev.session_id);
        if (!entry) {
          return false;
        }
        const session = {
          ...entry.session,
          resource_usage: ev.resource_usage ?? null
        };
        this._entries.set(ev.session_id, { ...entry, session });
        return true;
      }
      default:
        // Newer servers may send event types we do not know yet.
        return false;
    }
  }

  private _entries = new Map<string, ISessionEntry>();
  private _loaded = false;
  private _changed = new Signal<this, void>(this);
}

function makeEntry(session: IActiveSession, now: number): ISessionEntry {
  return {
    session,
    queue: queueFromExecutionQueue(session.execution_queue),
    since: now
  };
}

function compareEntries(a: ISessionEntry, b: ISessionEntry): number {
  const sa = a.session.started ?? '';
  const sb = b.session.started ?? '';
  // RFC 3339 timestamps from one server sort correctly as strings only when
  // they share a format; parse them to be safe.
  const ta = Date.parse(sa);
  const tb = Date.parse(sb);
  if (!isNaN(ta) && !isNaN(tb) && ta !== tb) {
    return ta - tb;
  }
  return a.session.session_id < b.session.session_id
    ? -1
    : a.session.session_id > b.session.session_id
      ? 1
      : 0;
}

function isObject(x: unknown): x is { [key: string]: unknown } {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function isSession(x: unknown): x is IActiveSession {
  return isObject(x) && typeof x.session_id === 'string';
}

// ---------------------------------------------------------------------------
// Queue helpers
// ---------------------------------------------------------------------------

/** The code of an execute_request message ('' when there is none). */
export function messageCode(msg: IJupyterMessage | null | undefined): string {
  const code = msg?.content?.code;
  return typeof code === 'string' ? code : '';
}

/** The agent an execute_request came from (the server marks agents' requests
 * in their metadata: `session_ext.agent`). */
export function messageAgent(
  msg: IJupyterMessage | null | undefined
): string | undefined {
  const mark = msg?.metadata?.session_ext as { agent?: unknown } | undefined;
  return typeof mark?.agent === 'string' && mark.agent ? mark.agent : undefined;
}

function requestAgent(r: IQueuedRequest): string | undefined {
  if (r.source !== 'agent') {
    return undefined;
  }
  return typeof r.agent === 'string' && r.agent ? r.agent : 'agent';
}

export function queueFromExecutionQueue(
  q: IExecutionQueue | null | undefined
): IQueueSummary {
  if (!q) {
    return { active: null, pending: [], length: 0 };
  }
  const pending = (Array.isArray(q.pending) ? q.pending : []).map(m => ({
    msgId: m?.header?.msg_id ?? '',
    code: messageCode(m),
    agent: messageAgent(m)
  }));
  return {
    active: q.active
      ? {
          msgId: q.active.header?.msg_id ?? '',
          code: messageCode(q.active),
          agent: messageAgent(q.active)
        }
      : null,
    pending,
    length: typeof q.length === 'number' ? q.length : pending.length
  };
}

export function queueFromEvent(ev: {
  length: number;
  active: IQueuedRequest | null;
  pending: IQueuedRequest[];
}): IQueueSummary {
  const pending = (Array.isArray(ev.pending) ? ev.pending : []).map(r => ({
    msgId: r.msg_id,
    code: typeof r.code === 'string' ? r.code : '',
    agent: requestAgent(r)
  }));
  return {
    active: ev.active
      ? {
          msgId: ev.active.msg_id,
          code: typeof ev.active.code === 'string' ? ev.active.code : '',
          agent: requestAgent(ev.active)
        }
      : null,
    pending,
    length: typeof ev.length === 'number' ? ev.length : pending.length
  };
}

/**
 * The first non-blank line of a cell, shortened to `max` characters, for
 * one-line queue entries. Magic-only or empty cells get a placeholder.
 */
export function firstLine(code: string, max = 60): string {
  const line = code
    .split(/\r?\n/)
    .map(l => l.trim())
    .find(l => l.length > 0);
  if (line === undefined) {
    return '(empty cell)';
  }
  return line.length > max ? line.slice(0, max - 1) + '…' : line;
}

// ---------------------------------------------------------------------------
// Time and size formatting
// ---------------------------------------------------------------------------

/**
 * Seconds the session has been in its current busy/idle state, ticking from
 * the last server value; null for states without a clock.
 */
export function statusSeconds(
  entry: ISessionEntry,
  now: number = Date.now()
): number | null {
  const { status, busy_seconds, idle_seconds } = entry.session;
  const elapsed = Math.max(0, Math.floor((now - entry.since) / 1000));
  if (status === 'busy') {
    return (busy_seconds || 0) + elapsed;
  }
  if (status === 'idle') {
    return (idle_seconds || 0) + elapsed;
  }
  return null;
}

/** 7 → "7s", 125 → "2m 05s", 3725 → "1h 02m", 90000 → "1d 1h". */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  if (s < 60) {
    return `${s}s`;
  }
  const pad = (n: number) => String(n).padStart(2, '0');
  if (s < 3600) {
    return `${Math.floor(s / 60)}m ${pad(s % 60)}s`;
  }
  if (s < 86400) {
    return `${Math.floor(s / 3600)}h ${pad(Math.floor((s % 3600) / 60))}m`;
  }
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

/** Binary units, three significant digits: 1536 → "1.50 KiB". */
export function formatBytes(bytes: number): string {
  if (!isFinite(bytes) || bytes < 0) {
    return '—';
  }
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  if (unit === 0) {
    return `${value} B`;
  }
  const digits = value >= 100 ? 0 : value >= 10 ? 1 : 2;
  return `${value.toFixed(digits)} ${BYTE_UNITS[unit]}`;
}

export function formatCpu(percent: number): string {
  return `${Math.round(percent)}%`;
}

/** "busy 12s", "idle 3m 05s", or just the status when it has no clock. */
export function describeStatus(
  entry: ISessionEntry,
  now: number = Date.now()
): string {
  const seconds = statusSeconds(entry, now);
  const status = entry.session.status;
  return seconds === null ? status : `${status} ${formatDuration(seconds)}`;
}

// ---------------------------------------------------------------------------
// Sessions and documents
// ---------------------------------------------------------------------------

/**
 * The document path (relative to the server root, as `docmanager:open`
 * wants it) of a session mirrored from a JupyterLab notebook or console.
 * `notebook_uri` is absolute on the server's disk, so it cannot be used.
 */
export function documentPath(session: IActiveSession): string | null {
  const path = session.metadata?.path;
  return typeof path === 'string' && path.length > 0 ? path : null;
}

/**
 * For a kernel that runs elsewhere: where ("on gpu-3") and a longer title
 * (provisioner, pid there); null for a local kernel or none.
 */
export function remotePlacement(
  session: IActiveSession
): { label: string; title: string } | null {
  const p = session.provisioner;
  if (!p || p.local) {
    return null;
  }
  const where = p.host ?? 'a remote host';
  const pid = p.pid !== null ? `, pid ${p.pid} there` : '';
  return {
    label: `on ${where}`,
    title: `Runs on ${where} through ${p.name}${pid}: CPU and memory are not measured`
  };
}

/** Sessions whose kernel the user may want a console on. */
export function canOpenConsole(session: IActiveSession): boolean {
  return (
    (session.session_mode === 'background' ||
      session.session_mode === 'console') &&
    !!session.kernel_id &&
    isRunning(session.status)
  );
}

/** Whether the kernel process is (believed to be) alive. */
export function isRunning(status: SessionStatus): boolean {
  return status !== 'exited' && status !== 'uninitialized';
}

/**
 * The session that backs a notebook: matched by the jupyter_server session
 * id (the supervisor reuses it), else by kernel id — e.g. right after a
 * kernel change, before the session mirror caught up.
 */
export function findSessionFor(
  store: SessionStore,
  ids: { sessionId?: string | null; kernelId?: string | null }
): ISessionEntry | null {
  if (ids.sessionId) {
    const bySession = store.get(ids.sessionId);
    if (bySession) {
      return bySession;
    }
  }
  if (ids.kernelId) {
    for (const entry of store.entries()) {
      if (entry.session.kernel_id === ids.kernelId) {
        return entry;
      }
    }
  }
  return null;
}

// ---------------------------------------------------------------------------
// Reconnection
// ---------------------------------------------------------------------------

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential from
 * `base` up to `max`, with ±20% jitter so that many tabs do not reconnect to
 * a restarted server in lock step.
 */
export function reconnectDelay(
  attempt: number,
  options: { base?: number; max?: number; random?: () => number } = {}
): number {
  const { base = 1000, max = 30000, random = Math.random } = options;
  const exp = Math.min(max, base * Math.pow(2, Math.max(0, attempt)));
  return Math.round(exp * (0.8 + 0.4 * random()));
}
