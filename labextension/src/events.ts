/**
 * The `/supervisor/events` websocket: one connection, reconnected with
 * backoff whenever it closes (e.g. the server restarted). The server sends a
 * fresh `snapshot` on every connect, so nothing has to be replayed here.
 *
 * No JupyterLab imports, so it can be tested with a fake socket.
 */
import { IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { reconnectDelay } from './model';

export type ConnectionState = 'connecting' | 'open' | 'closed';

/**
 * The part of the WebSocket API we use (lets tests pass a fake). Handler
 * arguments are `any` so that a real WebSocket is assignable.
 */
export interface ISocket {
  onopen: ((ev: any) => any) | null;
  onmessage: ((ev: any) => any) | null;
  onclose: ((ev: any) => any) | null;
  onerror: ((ev: any) => any) | null;
  close(): void;
}

export interface IEventStreamOptions {
  /** Full ws(s):// URL, token included when needed. */
  url: string;
  /** Called with every decoded JSON frame. */
  onEvent: (frame: unknown) => void;
  createSocket: (url: string) => ISocket;
  /** Backoff parameters (ms); see `reconnectDelay`. */
  backoff?: { base?: number; max?: number; random?: () => number };
}

export class EventStream implements IDisposable {
  constructor(options: IEventStreamOptions) {
    this._options = options;
  }

  get state(): ConnectionState {
    return this._state;
  }

  get stateChanged(): ISignal<this, ConnectionState> {
    return this._stateChanged;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** Number of consecutive failed attempts (resets on the first frame). */
  get attempt(): number {
    return this._attempt;
  }

  /** Open the socket; safe to call once. */
  start(): void {
    if (!this._socket && !this._disposed && this._timer === null) {
      this._connect();
    }
  }

  /** Drop the current socket (or wait) and connect again right away. */
  reconnect(): void {
    if (this._disposed) {
      return;
    }
    this._clearTimer();
    this._closeSocket();
    this._attempt = 0;
    this._connect();
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._clearTimer();
    this._closeSocket();
    this._setState('closed');
    Signal.clearData(this);
  }

  private _connect(): void {
    this._setState('connecting');
    let socket: ISocket;
    try {
      socket = this._options.createSocket(this._options.url);
    } catch (err) {
      console.warn('session-ext: cannot open events websocket', err);
      this._scheduleReconnect();
      return;
    }
    this._socket = socket;
    socket.onopen = () => {
      if (this._socket === socket) {
        this._setState('open');
      }
    };
    socket.onmessage = ev => {
      if (this._socket !== socket) {
        return;
      }
      // Reset the backoff only once the server really talks to us: a socket
      // that opens and is closed at once must not reconnect in a tight loop.
      this._attempt = 0;
      let frame: unknown;
      try {
        frame = JSON.parse(String(ev.data));
      } catch {
        console.warn('session-ext: ignoring a non-JSON events frame');
        return;
      }
      this._options.onEvent(frame);
    };
    socket.onclose = () => {
      if (this._socket !== socket) {
        return;
      }
      this._socket = null;
      this._setState('closed');
      this._scheduleReconnect();
    };
    // An error is always followed by a close, which does the work.
    socket.onerror = () => undefined;
  }

  private _scheduleReconnect(): void {
    if (this._disposed) {
      return;
    }
    const delay = reconnectDelay(this._attempt, this._options.backoff);
    this._attempt++;
    this._timer = setTimeout(() => {
      this._timer = null;
      this._connect();
    }, delay);
  }

  private _closeSocket(): void {
    const socket = this._socket;
    this._socket = null;
    if (socket) {
      socket.onopen = socket.onmessage = socket.onclose = null;
      socket.onerror = null;
      socket.close();
    }
  }

  private _clearTimer(): void {
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
  }

  private _setState(state: ConnectionState): void {
    if (this._state !== state) {
      this._state = state;
      this._stateChanged.emit(state);
    }
  }

  private _options: IEventStreamOptions;
  private _socket: ISocket | null = null;
  private _timer: ReturnType<typeof setTimeout> | null = null;
  private _attempt = 0;
  private _state: ConnectionState = 'closed';
  private _disposed = false;
  private _stateChanged = new Signal<this, ConnectionState>(this);
}
