import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

import { EventStream, ISocket } from '../src/events';

/** A socket the test drives by hand. */
class FakeSocket implements ISocket {
  constructor(readonly url: string) {}
  onopen: ((ev: any) => any) | null = null;
  onmessage: ((ev: any) => any) | null = null;
  onclose: ((ev: any) => any) | null = null;
  onerror: ((ev: any) => any) | null = null;
  closed = false;
  close(): void {
    this.closed = true;
  }
  // Helpers playing the server's part.
  open(): void {
    this.onopen?.({});
  }
  send(data: string): void {
    this.onmessage?.({ data });
  }
  drop(): void {
    this.onerror?.({});
    this.onclose?.({ code: 1006 });
  }
}

describe('EventStream', () => {
  let sockets: FakeSocket[];
  let frames: unknown[];
  let stream: EventStream;

  beforeEach(() => {
    vi.useFakeTimers();
    sockets = [];
    frames = [];
    stream = new EventStream({
      url: 'ws://host/supervisor/events?token=t',
      onEvent: frame => frames.push(frame),
      createSocket: url => {
        const s = new FakeSocket(url);
        sockets.push(s);
        return s;
      },
      backoff: { base: 1000, max: 8000, random: () => 0.5 }
    });
  });

  afterEach(() => {
    stream.dispose();
    vi.useRealTimers();
  });

  it('connects once and passes decoded frames on', () => {
    const states: string[] = [];
    stream.stateChanged.connect((_, s) => states.push(s));
    stream.start();
    stream.start();
    expect(sockets).toHaveLength(1);
    expect(sockets[0].url).toBe('ws://host/supervisor/events?token=t');
    sockets[0].open();
    sockets[0].send('{"event":"snapshot","sessions":[]}');
    sockets[0].send('not json');
    sockets[0].send('{"event":"future_thing"}');
    expect(frames).toEqual([
      { event: 'snapshot', sessions: [] },
      { event: 'future_thing' }
    ]);
    expect(states).toEqual(['connecting', 'open']);
  });

  it('reconnects with growing delays while the server is away', () => {
    stream.start();
    sockets[0].drop(); // never opened: server down
    expect(stream.state).toBe('closed');
    vi.advanceTimersByTime(999);
    expect(sockets).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sockets).toHaveLength(2);
    expect(stream.state).toBe('connecting');

    sockets[1].drop();
    vi.advanceTimersByTime(1999);
    expect(sockets).toHaveLength(2);
    vi.advanceTimersByTime(1);
    expect(sockets).toHaveLength(3);

    sockets[2].drop();
    vi.advanceTimersByTime(4000);
    sockets[3].drop();
    vi.advanceTimersByTime(8000);
    sockets[4].drop();
    vi.advanceTimersByTime(8000); // capped at max
    expect(sockets).toHaveLength(6);
  });

  it('resets the backoff once the server sends a frame', () => {
    stream.start();
    sockets[0].drop();
    vi.advanceTimersByTime(1000);
    sockets[1].drop();
    vi.advanceTimersByTime(2000);
    expect(stream.attempt).toBe(2);

    // Server is back: opens and sends its snapshot.
    sockets[2].open();
    sockets[2].send('{"event":"snapshot","sessions":[]}');
    expect(stream.attempt).toBe(0);
    sockets[2].drop(); // server restart
    vi.advanceTimersByTime(1000);
    expect(sockets).toHaveLength(4);
  });

  it('does not reset the backoff for a socket that opens and closes at once', () => {
    stream.start();
    sockets[0].open();
    sockets[0].drop();
    vi.advanceTimersByTime(1000);
    sockets[1].open();
    sockets[1].drop();
    vi.advanceTimersByTime(1999);
    expect(sockets).toHaveLength(2);
  });

  it('reconnect() replaces the socket at once', () => {
    stream.start();
    sockets[0].open();
    stream.reconnect();
    expect(sockets[0].closed).toBe(true);
    expect(sockets).toHaveLength(2);
    // Late events from the old socket are ignored.
    sockets[0].onmessage?.({ data: '{"event":"snapshot","sessions":[]}' });
    expect(frames).toEqual([]);
  });

  it('stops for good when disposed', () => {
    stream.start();
    sockets[0].open();
    stream.dispose();
    expect(sockets[0].closed).toBe(true);
    expect(stream.state).toBe('closed');
    vi.advanceTimersByTime(60000);
    expect(sockets).toHaveLength(1);
    stream.start();
    stream.reconnect();
    expect(sockets).toHaveLength(1);
  });

  it('retries when the socket cannot even be created', () => {
    let fail = true;
    const made: string[] = [];
    const s = new EventStream({
      url: 'ws://bad',
      onEvent: () => undefined,
      createSocket: url => {
        if (fail) {
          throw new Error('SyntaxError: bad url');
        }
        made.push(url);
        return new FakeSocket(url);
      },
      backoff: { random: () => 0.5 }
    });
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    s.start();
    fail = false;
    vi.advanceTimersByTime(1000);
    expect(made).toEqual(['ws://bad']);
    expect(warn).toHaveBeenCalled();
    warn.mockRestore();
    s.dispose();
  });
});
