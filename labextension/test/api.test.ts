import { ServerConnection } from '@jupyterlab/services';
import { describe, expect, it } from 'vitest';

import { SupervisorClient, SupervisorError } from '../src/api';
import { makeSession } from './fixtures';

interface ICall {
  url: string;
  method: string;
  body: string;
  headers: Headers;
}

/** A client whose fetch records the request and answers `reply`. */
function clientWith(
  reply: (call: ICall) => Response,
  token = 'secret'
): { client: SupervisorClient; calls: ICall[] } {
  const calls: ICall[] = [];
  const settings = ServerConnection.makeSettings({
    baseUrl: 'http://localhost:8888/base/',
    wsUrl: 'ws://localhost:8888/base/',
    token,
    appendToken: false,
    fetch: async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input as RequestInfo, init);
      const call = {
        // ServerConnection appends a cache buster (`?<ms>` / `&<ms>`) to
        // every request, as for JupyterLab's own; strip it to compare.
        url: request.url.replace(/[?&]\d{10,}$/, ''),
        method: request.method,
        body: await request.text(),
        headers: request.headers
      };
      calls.push(call);
      return reply(call);
    }
  });
  return { client: new SupervisorClient(settings), calls };
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), {
    status,
    headers: { 'Content-Type': 'application/json' }
  });

/** The error a request fails with (fails the test if it succeeds). */
async function failure(request: Promise<unknown>): Promise<SupervisorError> {
  try {
    await request;
  } catch (err) {
    return err as SupervisorError;
  }
  throw new Error('the request was expected to fail');
}

describe('SupervisorClient', () => {
  it('builds the events URL with and without a token', () => {
    expect(clientWith(() => json(200, {})).client.eventsUrl()).toBe(
      'ws://localhost:8888/base/supervisor/events?token=secret'
    );
    expect(clientWith(() => json(200, {}), '').client.eventsUrl()).toBe(
      'ws://localhost:8888/base/supervisor/events'
    );
    expect(clientWith(() => json(200, {}), 'a b&c').client.eventsUrl()).toBe(
      'ws://localhost:8888/base/supervisor/events?token=a%20b%26c'
    );
  });

  it('lists sessions with the token header', async () => {
    const { client, calls } = clientWith(() =>
      json(200, { total: 1, sessions: [makeSession()] })
    );
    const sessions = await client.listSessions();
    expect(sessions.map(s => s.session_id)).toEqual(['s1']);
    expect(calls[0].url).toBe('http://localhost:8888/base/supervisor/sessions');
    expect(calls[0].method).toBe('GET');
    expect(calls[0].headers.get('Authorization')).toBe('token secret');
  });

  it('sends each action to its route', async () => {
    const { client, calls } = clientWith(() => json(200, {}));
    await client.interrupt('s1');
    await client.restart('s1');
    await client.kill('s1');
    await client.shutdown('s1');
    await client.cancelQueued('s1', 'abc/def 1');
    expect(calls.map(c => `${c.method} ${c.url}`)).toEqual([
      'POST http://localhost:8888/base/supervisor/sessions/s1/interrupt',
      'POST http://localhost:8888/base/supervisor/sessions/s1/restart',
      'POST http://localhost:8888/base/supervisor/sessions/s1/kill',
      'DELETE http://localhost:8888/base/supervisor/sessions/s1?force=true',
      'DELETE http://localhost:8888/base/supervisor/sessions/s1/queue/abc%2Fdef%201'
    ]);
    expect(calls[1].body).toBe('{}');
    expect(calls[1].headers.get('Content-Type')).toBe('application/json');
  });

  it('returns the queue', async () => {
    const queue = {
      active: { msg_id: 'a', code: 'x', queued_at: 1 },
      pending: [{ msg_id: 'b', code: 'y', queued_at: 2 }],
      length: 1
    };
    const { client, calls } = clientWith(() => json(200, queue));
    expect(await client.getQueue('s1')).toEqual(queue);
    expect(calls[0].url).toBe(
      'http://localhost:8888/base/supervisor/sessions/s1/queue'
    );
  });

  it('accepts empty success bodies (204)', async () => {
    const { client } = clientWith(() => new Response(null, { status: 204 }));
    await expect(client.kill('s1')).resolves.toBeUndefined();
  });

  it("surfaces the server's error message", async () => {
    const { client } = clientWith(() =>
      json(409, {
        code: 'KS-409',
        message: 'Request m1 is running; interrupt instead',
        details: { msg_id: 'm1' }
      })
    );
    const err = await failure(client.cancelQueued('s1', 'm1'));
    expect(err).toBeInstanceOf(SupervisorError);
    expect(err.message).toBe('Request m1 is running; interrupt instead');
    expect(err.status).toBe(409);
    expect(err.code).toBe('KS-409');
    expect(err.details).toEqual({ msg_id: 'm1' });
  });

  it('falls back to the HTTP status for non-JSON errors', async () => {
    const { client } = clientWith(
      () =>
        new Response('<html>Bad gateway</html>', {
          status: 502,
          statusText: 'Bad Gateway'
        })
    );
    const err = await failure(client.interrupt('s1'));
    expect(err).toBeInstanceOf(SupervisorError);
    expect(err.message).toBe('502 Bad Gateway');
  });
});
