// Drives session-ext-kcserver with Positron's generated Kallichore client (./kcclient, copied
// unmodified from ../shared/reference/positron-kcclient by tests/kallichore/test_positron_client.py), the
// way Positron's positron-supervisor extension does: the API built from the server state as
// KallichoreApiInstance.loadState builds it, the channels websocket at the URL
// KallichoreSession.getWebsocketUri builds, the calls in Positron's order.
//
// Usage: node driver.js <state.json> <python> <workdir>
// Prints one line `REPORT <json>` ({operation: {ok, detail}}) and exits 0 iff every
// exercised operation passed.

import * as fs from 'fs';
import * as path from 'path';
import axios, { isAxiosError } from 'axios';
import WebSocket from 'ws';
import {
    ActiveSession, ConnectionInfo, DefaultApi, DefaultApiAxiosParamCreator, ExecuteReply,
    ExecutionHistoryEntry, InterruptMode, McpStatus, McpWorkspace, NewSession, RestartSession, ServerConfiguration, ServerStatus, SessionList, SessionMode,
    StartupEnvironment, Status, VarActionType,
} from './kcclient/api';
import { Configuration } from './kcclient/configuration';
import * as checks from './checks';

/** Positron's KallichoreServerState (ServerState.ts). */
interface KallichoreServerState {
    port?: number; base_path?: string; server_path: string; server_pid: number;
    bearer_token: string; server_id?: string; log_path: string; transport?: string;
    socket_path?: string; named_pipe?: string;
}

const WAIT_MS = 30000;
const [statePath, python, workdir] = process.argv.slice(2);
const state: KallichoreServerState = JSON.parse(fs.readFileSync(statePath, 'utf8'));
const socketTransport = !state.base_path && !!state.socket_path;

/** What KallichoreApiInstance.loadState does. */
function makeApi(s: KallichoreServerState, token: string): DefaultApi {
    const baseOptions = {
        socketPath: s.socket_path,
        proxy: false as const,
        headers: { Authorization: `Bearer ${token}` },
    };
    return new DefaultApi(new Configuration({ accessToken: token, baseOptions }), s.base_path);
}

const api = makeApi(state, state.bearer_token);
const report: Record<string, { ok: boolean; detail: string }> = {};

function pass(op: string, detail = ''): void {
    if (!report[op] || report[op].ok) { report[op] = { ok: true, detail }; }
}

function expect(cond: unknown, message: string): asserts cond {
    if (!cond) { throw new checks.CheckError(message); }
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout;
    const t = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    });
    return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

async function op<T>(name: string, f: () => Promise<T>): Promise<T> {
    try {
        const result = await withTimeout(f(), WAIT_MS * 2, name);
        pass(name);
        return result;
    } catch (err) {
        const detail = isAxiosError(err) ? `HTTP ${err.response?.status}: ${JSON.stringify(err.response?.data)}` : String(err);
        report[name] = { ok: false, detail };
        throw err;
    }
}

async function sleep(ms: number): Promise<void> { await new Promise((r) => setTimeout(r, ms)); }

async function waitStatus(id: string, wanted: Status[]): Promise<ActiveSession> {
    const deadline = Date.now() + WAIT_MS;
    for (; ;) {
        const s = checks.check<ActiveSession>('ActiveSession', (await api.getSession(id)).data, checks.activeSession);
        if (wanted.includes(s.status)) { return s; }
        expect(Date.now() < deadline, `session ${id} is ${s.status}, expected ${wanted.join('|')}`);
        await sleep(100);
    }
}

// --- the channels websocket, as KallichoreSession.connect opens it ------------------------

class Channel {
    readonly received: any[] = [];
    private waiters: Array<() => void> = [];
    constructor(readonly ws: WebSocket) {
        ws.on('message', (data) => {
            this.received.push(JSON.parse(data.toString()));
            const waiters = this.waiters;
            this.waiters = [];
            waiters.forEach((w) => w());
        });
    }
    static async open(id: string): Promise<Channel> {
        let uri: string;
        if (socketTransport) {
            const response = await op('channelsUpgrade', () => api.channelsUpgrade(id));
            const socketPath = response.data as unknown;
            expect(typeof socketPath === 'string' && socketPath.startsWith('/'),
                `channelsUpgrade answered ${JSON.stringify(socketPath)}, not a socket path`);
            uri = `ws+unix://${socketPath}:/api/channels/${id}`;
        } else {
            const basePath = state.base_path!;
            const wsScheme = basePath.startsWith('https://') ? 'wss://' : 'ws://';
            const baseUrl = basePath.replace(/^https?:\/\//, '').replace(/\/$/, '');
            uri = `${wsScheme}${baseUrl}/sessions/${id}/channels`;
        }
        // @ts-ignore -- as Positron reads them (KallichoreSession.connect)
        const headers = api.configuration?.baseOptions?.headers;
        const ws = new WebSocket(uri, { headers });
        await withTimeout(new Promise<void>((resolve, reject) => {
            ws.once('open', () => resolve());
            ws.once('error', reject);
        }), WAIT_MS, `websocket ${uri}`);
        return new Channel(ws);
    }
    send(channel: string, msgType: string, content: object): string {
        const msgId = `${msgType}-${Math.random().toString(16).slice(2)}`;
        this.ws.send(JSON.stringify({
            header: { msg_id: msgId, msg_type: msgType, username: 'positron', session: 'driver',
                date: new Date().toISOString(), version: '5.3' },
            parent_header: {}, metadata: {}, content, channel, buffers: [],
        }));
        return msgId;
    }
    async until(pred: (m: any) => boolean, what: string): Promise<any> {
        const deadline = Date.now() + WAIT_MS;
        for (; ;) {
            const found = this.received.find(pred);
            if (found) { return found; }
            const left = deadline - Date.now();
            expect(left > 0, `no ${what}; last frames: ${JSON.stringify(this.received.slice(-5))}`);
            await new Promise<void>((resolve) => {
                const timer = setTimeout(resolve, left);
                this.waiters.push(() => { clearTimeout(timer); resolve(); });
            });
        }
    }
    replyTo(msgId: string, what: string): Promise<any> {
        return this.until((m) => m.kind === 'jupyter' && m.parent_header?.msg_id === msgId
            && String(m.header?.msg_type).endsWith('_reply'), what);
    }
    close(): void { this.ws.close(); }
}

// --- the scenario ----------------------------------------------------------------------

function newSession(id: string, argv: string[]): NewSession {
    // the fields KallichoreSession.create sends
    return {
        session_id: id, display_name: `Python (${id})`, language: 'python',
        username: process.env.USER || 'positron', input_prompt: '', continuation_prompt: '',
        argv, session_mode: SessionMode.Console, working_directory: workdir,
        env: [{ action: VarActionType.Replace, name: 'POSITRON', value: '1' }],
        connection_timeout: 30, interrupt_mode: InterruptMode.Message, protocol_version: '5.3',
        startup_environment: StartupEnvironment.None,
    };
}

async function scenario(): Promise<void> {
    const kernelArgv = [python, '-m', 'ipykernel_launcher', '-f', '{connection_file}'];
    const id = `positron-${process.pid}`;

    const status = await op('serverStatus', async () => {
        const s: ServerStatus = checks.check('ServerStatus', (await api.serverStatus()).data, checks.serverStatus);
        expect(s.server_id && s.server_id === state.server_id, `server_id ${s.server_id} != ${state.server_id}`);
        expect(s.process_id === state.server_pid, 'process_id is not the server_pid of the state');
        return s;
    });
    pass('serverStatus', `server_id ${status.server_id}, version ${status.version}`);

    await op('serverStatus (stale token → 401)', async () => {
        try {
            await makeApi(state, 'stale-token').serverStatus();
        } catch (err) {
            // Positron's isUnauthorizedError
            expect(isAxiosError(err) && (err.response?.status === 401 || err.status === 401),
                `expected 401, got ${isAxiosError(err) ? err.response?.status : err}`);
            return;
        }
        throw new Error('a stale token was accepted');
    });

    await op('setServerConfiguration', async () => {
        await api.setServerConfiguration({ idle_shutdown_hours: 1 });
        await api.setServerConfiguration({ resource_sample_interval_ms: 1000 });
    });
    await op('getServerConfiguration', async () => {
        const c: ServerConfiguration = checks.check('ServerConfiguration', (await api.getServerConfiguration()).data, checks.serverConfiguration);
        expect(c.idle_shutdown_hours === 1 && c.resource_sample_interval_ms === 1000, JSON.stringify(c));
    });
    await op('clientHeartbeat', () => api.clientHeartbeat({ process_id: process.pid }));

    await op('newSession', async () => {
        const r = checks.check('NewSession200Response', (await api.newSession(newSession(id, kernelArgv))).data, checks.newSessionResponse);
        expect(r.session_id === id, JSON.stringify(r));
    });
    await op('startSession', async () => {
        const info = (await api.startSession(id)).data as any;
        expect(info && info.status === 'ok' && info.language_info?.name === 'python', JSON.stringify(info).slice(0, 300));
    });
    await op('getSession', async () => {
        const s = await waitStatus(id, [Status.Idle]);
        expect(s.session_id === id && typeof s.process_id === 'number', JSON.stringify(s).slice(0, 300));
    });
    await op('listSessions', async () => {
        const list: SessionList = checks.check('SessionList', (await api.listSessions()).data, checks.sessionList);
        expect(list.total === list.sessions.length && list.sessions.some((s) => s.session_id === id), 'session not listed');
    });

    // the channels websocket: kernel_info, then code
    const channel = await op('channels websocket', () => Channel.open(id));
    await op('channels: kernel_info', async () => {
        const reply = await channel.replyTo(channel.send('shell', 'kernel_info_request', {}), 'kernel_info_reply');
        expect(reply.content.status === 'ok' && reply.header.msg_type === 'kernel_info_reply', JSON.stringify(reply).slice(0, 300));
    });
    await op('channels: execute', async () => {
        const msgId = channel.send('shell', 'execute_request', { code: 'print(6 * 7)', silent: false, store_history: true, user_expressions: {}, allow_stdin: true, stop_on_error: true });
        const stream = await channel.until((m) => m.channel === 'iopub' && m.header.msg_type === 'stream' && m.parent_header.msg_id === msgId, 'stream');
        expect(stream.content.text === '42\n', JSON.stringify(stream.content));
        const reply = await channel.replyTo(msgId, 'execute_reply');
        expect(reply.content.status === 'ok', JSON.stringify(reply.content));
        await channel.until((m) => m.channel === 'iopub' && m.header.msg_type === 'status' && m.content.execution_state === 'idle' && m.parent_header.msg_id === msgId, 'idle');
    });
    await op('interruptSession', async () => {
        const msgId = channel.send('shell', 'execute_request', { code: 'while True: pass', silent: false, store_history: true, user_expressions: {}, allow_stdin: true, stop_on_error: true });
        await channel.until((m) => m.channel === 'iopub' && m.content?.execution_state === 'busy'
            && m.parent_header?.msg_id === msgId, 'busy');
        await sleep(300);
        await api.interruptSession(id);
        const reply = await channel.replyTo(msgId, 'execute_reply after the interrupt');
        expect(reply.content.status === 'error' && reply.content.ename === 'KeyboardInterrupt', JSON.stringify(reply.content));
    });

    await op('executeCode', async () => {
        const ok: ExecuteReply = checks.check('ExecuteReply', (await api.executeCode(id, { code: "print('hello'); 6 * 7" })).data, checks.executeReply);
        expect(ok.status === 'ok' && ok.output[0]?.type === 'stream' && ok.output[0].stream_name === 'stdout'
            && ok.output[0].text === 'hello\n' && ok.data?.['text/plain'] === '42', JSON.stringify(ok));
        const failed: ExecuteReply = checks.check('ExecuteReply', (await api.executeCode(id, { code: '1/0', stop_on_error: false, timeout_seconds: 20 })).data, checks.executeReply);
        const item = failed.output.find((o) => o.type === 'error');
        expect(failed.status === 'error' && failed.error_name === 'ZeroDivisionError'
            && item?.error_name === 'ZeroDivisionError' && (item.error_traceback ?? []).length > 0, JSON.stringify(failed));
    });
    await op('getSessionHistory', async () => {
        const history = (await api.getSessionHistory(id)).data as unknown;
        expect(Array.isArray(history), 'history is not an array');
        const entries = (history as unknown[]).map((e, i) => checks.check<ExecutionHistoryEntry>('ExecutionHistoryEntry', e, checks.historyEntry, `history[${i}]`));
        const failed = entries.find((e) => e.input === '1/0');
        expect(failed?.error?.name === 'ZeroDivisionError' && failed.error.message === 'division by zero'
            && failed.error.traceback.length > 0 && typeof failed.timestamp === 'number', JSON.stringify(failed));
        expect(entries.some((e) => e.input === 'print(6 * 7)' && e.output === '42\n'), 'the websocket execution is not in the history');
    });
    const info = await op('connectionInfo', async () =>
        checks.check<ConnectionInfo>('ConnectionInfo', (await api.connectionInfo(id)).data, checks.connectionInfo));

    await op('restartSession', async () => {
        const restartDir = path.join(workdir, 'restarted');
        fs.mkdirSync(restartDir, { recursive: true });
        const body: RestartSession = { working_directory: restartDir, env: [{ action: VarActionType.Replace, name: 'KC_RESTARTED', value: 'yes' }] };
        await api.restartSession(id, body);
        await waitStatus(id, [Status.Idle]);
        const r = (await api.executeCode(id, { code: "import os; print(os.getcwd(), os.environ.get('KC_RESTARTED'))" })).data;
        expect(r.output[0]?.text === `${restartDir} yes\n`, JSON.stringify(r.output));
        const after = checks.check<ConnectionInfo>('ConnectionInfo', (await api.connectionInfo(id)).data, checks.connectionInfo);
        expect(after.shell_port !== info.shell_port || after.key !== info.key, 'the restarted kernel has the old connection');
    });
    channel.close();

    // adopt: a session with no program of its own takes over a running kernel (the second
    // session's), from its connection info
    const owner = `${id}-owner`, adopter = `${id}-adopter`;
    await op('adoptSession', async () => {
        await api.newSession(newSession(owner, kernelArgv));
        await api.startSession(owner);
        await api.executeCode(owner, { code: "marker = 'adopted'" });
        const ownerInfo = checks.check<ConnectionInfo>('ConnectionInfo', (await api.connectionInfo(owner)).data, checks.connectionInfo);
        await api.newSession(newSession(adopter, []));
        const kernelInfo = (await api.adoptSession(adopter, ownerInfo)).data as any;
        expect(kernelInfo?.status === 'ok', JSON.stringify(kernelInfo).slice(0, 300));
        const r = (await api.executeCode(adopter, { code: 'marker' })).data;
        expect(r.data?.['text/plain'] === "'adopted'", JSON.stringify(r));
    });

    await op('killSession', async () => {
        await api.killSession(id);
        const s = await waitStatus(id, [Status.Exited]);
        expect(s.process_id === undefined || s.process_id === null, 'an exited session still has a process id');
    });
    await op('deleteSession', async () => {
        await api.deleteSession(id);
        try {
            await api.getSession(id);
        } catch (err) {
            expect(isAxiosError(err) && err.response?.status === 404, `expected 404, got ${err}`);
            return;
        }
        throw new Error('a deleted session is still there');
    });

    await mcpWorkspaces(kernelArgv);

    await op('shutdownServer', () => api.shutdownServer({ timeout: WAIT_MS }));
}

// --- MCP workspaces, as Positron registers its window's ------------------------------------

async function mcpStatus(): Promise<McpStatus> {
    const s = checks.check<ServerStatus>('ServerStatus', (await api.serverStatus()).data, checks.serverStatus);
    expect(s.mcp, 'GET /status has no mcp');
    return s.mcp;
}

/** What an agent's first request to the workspace's MCP URL gets (the HTTP status). */
async function mcpProbe(url: string, token: string): Promise<number> {
    const r = await axios.post(url, {
        jsonrpc: '2.0', id: 1, method: 'initialize',
        params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'driver', version: '1' } },
    }, { headers: { Authorization: `Bearer ${token}`, Accept: 'application/json, text/event-stream' },
         validateStatus: () => true, responseType: 'text', proxy: false, timeout: WAIT_MS });
    return r.status;
}

async function mcpWorkspaces(kernelArgv: string[]): Promise<void> {
    const ws = await op('registerMcpWorkspace', async () => {
        const w: McpWorkspace = checks.check('McpWorkspace', (await api.registerMcpWorkspace({ display_name: 'driver folder' })).data, checks.mcpWorkspace);
        expect(w.url === `http://127.0.0.1:${w.port}/mcp/${w.workspace_id}` && w.token !== state.bearer_token, JSON.stringify(w));
        // again with the id and token it was issued (a window reload, a restarted server)
        const again: McpWorkspace = checks.check('McpWorkspace', (await api.registerMcpWorkspace({
            workspace_id: w.workspace_id, display_name: 'driver folder', token: w.token, preferred_port: w.port })).data, checks.mcpWorkspace);
        expect(JSON.stringify(again) === JSON.stringify(w), `re-registered: ${JSON.stringify(again)}`);
        const s = await mcpStatus();
        expect(s.active && s.port === w.port && s.workspaces.some((x) => x.id === w.workspace_id && !x.connected), JSON.stringify(s));
        expect(await mcpProbe(w.url, w.token) === 200, 'the workspace token did not open its MCP URL');
        expect(await mcpProbe(w.url, state.bearer_token) === 401, 'the server token opened the MCP URL');
        // a session of the workspace
        await api.newSession({ ...newSession(`${w.workspace_id}-s`, kernelArgv), workspace_id: w.workspace_id });
        await api.deleteSession(`${w.workspace_id}-s`);
        return w;
    });

    await op('mcpWorkspaceChannel', async () => {
        // The generated call is a plain GET (no upgrade): a JSON 400, as for the channels.
        try {
            await api.mcpWorkspaceChannel(ws.workspace_id);
            throw new Error('a plain GET of the channel was answered 2xx');
        } catch (err) {
            expect(isAxiosError(err) && err.response?.status === 400, `plain GET: ${err}`);
        }
        // The websocket at the operation's path, under the API's base as Positron's
        // websockets are (the unix socket's root for the socket transport).
        const { url } = await DefaultApiAxiosParamCreator(api['configuration']).mcpWorkspaceChannel(ws.workspace_id);
        const uri = socketTransport
            ? `ws+unix://${state.socket_path}:${url}`
            : `${state.base_path!.replace(/^http/, 'ws').replace(/\/$/, '')}${url}`;
        // @ts-ignore -- as Positron reads them (KallichoreSession.connect)
        const headers = api.configuration?.baseOptions?.headers;
        const socket = new WebSocket(uri, { headers });
        const first = await withTimeout(new Promise<any>((resolve, reject) => {
            socket.once('message', (data) => resolve(JSON.parse(data.toString())));
            socket.once('error', reject);
        }), WAIT_MS, `websocket ${uri}`);
        expect(first.event === 'connected' && first.workspace_id === ws.workspace_id, JSON.stringify(first));
        let s = await mcpStatus();
        expect(s.workspaces.find((x) => x.id === ws.workspace_id)?.connected === true, 'not connected while the channel is open');
        socket.close();
        const deadline = Date.now() + WAIT_MS;
        do {
            await sleep(50);
            s = await mcpStatus();
        } while (s.workspaces.find((x) => x.id === ws.workspace_id)?.connected && Date.now() < deadline);
        expect(s.workspaces.find((x) => x.id === ws.workspace_id)?.connected === false, 'still connected after the close');
    });

    await op('deregisterMcpWorkspace', async () => {
        await api.deregisterMcpWorkspace(ws.workspace_id);
        const s = await mcpStatus();
        expect(!s.active && s.port === 0 && !s.workspaces.length, `after the last one: ${JSON.stringify(s)}`);
        expect(await mcpProbe(ws.url, ws.token).catch(() => 0) !== 200, 'a deregistered token still opens the MCP URL');
        try {
            await api.deregisterMcpWorkspace(ws.workspace_id);
        } catch (err) {
            expect(isAxiosError(err) && err.response?.status === 404, `again: ${err}`);
            return;
        }
        throw new Error('deregistering twice was answered 2xx');
    });
}

scenario().then(() => 0, (err) => {
    console.error(err instanceof Error ? err.stack : err);
    return 1;
}).then((code) => {
    if (!socketTransport && !report['channelsUpgrade']) {
        report['channelsUpgrade'] = { ok: true, detail: 'tcp: the websocket upgrade at the URL Positron builds (see "channels websocket")' };
    }
    if (checks.nullOptionals.size) {
        report['(note) optional fields sent as null'] = { ok: true, detail: [...checks.nullOptionals].sort().join(', ') };
    }
    console.log(`REPORT ${JSON.stringify(report)}`);
    process.exit(code === 0 && Object.values(report).every((r) => r.ok) ? 0 : 1);
});
