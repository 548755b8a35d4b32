// Runtime checks of the server's responses against the interfaces of Positron's generated
// client. Each spec is typed `Spec<Interface>`: tsc --strict fails if a spec leaves out a
// field of the interface, names one it does not have, or marks a field required when the
// interface makes it optional (or the other way round). At run time every required field
// must be there with its type, and every optional one present must have its type too.

import {
    ActiveSession, ConnectionInfo, ExecuteOutput, ExecuteOutputTypeEnum, ExecuteReply,
    ExecuteReplyStatusEnum, ExecutionError, ExecutionHistoryEntry, ExecutionQueue, InterruptMode,
    McpClient, McpStatus, McpWorkspace, McpWorkspaceStatus, NewSession200Response, ResourceUsage, ServerConfiguration, ServerConfigurationLogLevelEnum,
    ServerStatus, SessionList, SessionMode, Status,
} from './kcclient/api';

type Kind = 'string' | 'number' | 'integer' | 'boolean' | 'object' | 'array';

interface Field<R extends boolean> {
    required: R;
    kind: Kind;
    values?: readonly string[];            // an enum of the client
    item?: (value: unknown, where: string) => void;  // each array item / the nested object
}

type IsRequired<T, K extends keyof T> = {} extends Pick<T, K> ? false : true;
export type Spec<T> = { [K in keyof T]-?: Field<IsRequired<T, K>> };

/** Optional fields the server sends as JSON null rather than leaving out (a tolerance, listed
 * in the report so that it stays visible). */
export const nullOptionals = new Set<string>();

export class CheckError extends Error { }

function kindOf(value: unknown): string {
    if (value === null) { return 'null'; }
    if (Array.isArray(value)) { return 'array'; }
    if (typeof value === 'number') { return Number.isInteger(value) ? 'integer' : 'number'; }
    return typeof value;
}

function matches(kind: Kind, value: unknown): boolean {
    const actual = kindOf(value);
    return actual === kind || (kind === 'number' && actual === 'integer');
}

export function check<T>(name: string, value: unknown, spec: Spec<T>, where = name): T {
    if (kindOf(value) !== 'object') {
        throw new CheckError(`${where}: expected a ${name} object, got ${kindOf(value)}`);
    }
    const record = value as Record<string, unknown>;
    for (const [field, rule] of Object.entries(spec) as [string, Field<boolean>][]) {
        const at = `${where}.${field}`;
        if (!(field in record) || record[field] === undefined) {
            if (rule.required) { throw new CheckError(`${at}: required field missing`); }
            continue;
        }
        const v = record[field];
        if (v === null && !rule.required) {
            nullOptionals.add(`${name}.${field}`);
            continue;
        }
        if (!matches(rule.kind, v)) {
            throw new CheckError(`${at}: expected ${rule.kind}, got ${kindOf(v)} (${JSON.stringify(v)})`);
        }
        if (rule.values && !rule.values.includes(v as string)) {
            throw new CheckError(`${at}: ${JSON.stringify(v)} is not one of ${rule.values.join(', ')}`);
        }
        if (rule.item) {
            if (Array.isArray(v)) { v.forEach((x, i) => rule.item!(x, `${at}[${i}]`)); } else { rule.item(v, at); }
        }
    }
    return value as T;
}

const req = <K extends Kind>(kind: K, extra: Partial<Field<true>> = {}): Field<true> => ({ required: true, kind, ...extra });
const opt = <K extends Kind>(kind: K, extra: Partial<Field<false>> = {}): Field<false> => ({ required: false, kind, ...extra });
const strings = (v: unknown, at: string) => { if (typeof v !== 'string') { throw new CheckError(`${at}: expected string`); } };
const stringMap = (v: unknown, at: string) => {
    for (const [k, x] of Object.entries(v as object)) { strings(x, `${at}.${k}`); }
};

export const resourceUsage: Spec<ResourceUsage> = {
    cpu_percent: req('number'), memory_bytes: req('integer'), thread_count: req('integer'),
    sampling_period_ms: req('integer'), timestamp: req('integer'),
};

export const executionError: Spec<ExecutionError> = {
    name: req('string'), message: req('string'), traceback: req('array', { item: strings }),
};

export const historyEntry: Spec<ExecutionHistoryEntry> = {
    input: req('string'), output: req('string'),
    error: opt('object', { item: (v, at) => check('ExecutionError', v, executionError, at) }),
    timestamp: req('integer'), source: opt('string'), agent: opt('string'), truncated: req('boolean'),
};

export const executionQueue: Spec<ExecutionQueue> = {
    active: opt('object'), length: req('integer'), pending: req('array'),
};

export const activeSession: Spec<ActiveSession> = {
    session_id: req('string'), argv: req('array', { item: strings }), process_id: opt('integer'),
    username: req('string'), display_name: req('string'), language: req('string'),
    interrupt_mode: req('string', { values: Object.values(InterruptMode) }),
    initial_env: opt('object', { item: stringMap }), connected: req('boolean'),
    started: req('string'), session_mode: req('string', { values: Object.values(SessionMode) }),
    working_directory: req('string'), notebook_uri: opt('string'), input_prompt: req('string'),
    continuation_prompt: req('string'),
    execution_queue: req('object', { item: (v, at) => check('ExecutionQueue', v, executionQueue, at) }),
    status: req('string', { values: Object.values(Status) }), kernel_info: req('object'),
    resource_usage: opt('object', { item: (v, at) => check('ResourceUsage', v, resourceUsage, at) }),
    idle_seconds: req('integer'), busy_seconds: req('integer'), socket_path: opt('string'),
    history: opt('array', { item: (v, at) => check('ExecutionHistoryEntry', v, historyEntry, at) }),
};

export const sessionList: Spec<SessionList> = {
    total: req('integer'),
    sessions: req('array', { item: (v, at) => check('ActiveSession', v, activeSession, at) }),
};

export const mcpClient: Spec<McpClient> = {
    id: req('integer'), name: opt('string'), version: opt('string'), pid: opt('integer'),
    working_directory: opt('string'), session_id: opt('string'), connected_at: req('string'),
};

export const mcpWorkspaceStatus: Spec<McpWorkspaceStatus> = {
    id: req('string'), display_name: req('string'), connected: req('boolean'),
    clients: req('array', { item: (v, at) => check('McpClient', v, mcpClient, at) }),
};

export const mcpStatus: Spec<McpStatus> = {
    active: req('boolean'), port: req('integer'), request_count: req('integer'),
    workspaces: req('array', { item: (v, at) => check('McpWorkspaceStatus', v, mcpWorkspaceStatus, at) }),
};

export const mcpWorkspace: Spec<McpWorkspace> = {
    workspace_id: req('string'), token: req('string'), port: req('integer'), url: req('string'),
};

export const serverStatus: Spec<ServerStatus> = {
    sessions: req('integer'), active: req('integer'), busy: req('boolean'),
    idle_seconds: req('integer'), busy_seconds: req('integer'), uptime_seconds: req('integer'),
    version: req('string'), process_id: req('integer'), started: req('string'),
    server_id: opt('string'),
    mcp: opt('object', { item: (v, at) => check('McpStatus', v, mcpStatus, at) }),
};

export const executeOutput: Spec<ExecuteOutput> = {
    type: req('string', { values: Object.values(ExecuteOutputTypeEnum) }),
    stream_name: opt('string'), text: opt('string'), data: opt('object', { item: stringMap }),
    metadata: opt('object'), error_name: opt('string'), error_message: opt('string'),
    error_traceback: opt('array', { item: strings }),
};

export const executeReply: Spec<ExecuteReply> = {
    status: req('string', { values: Object.values(ExecuteReplyStatusEnum) }),
    execution_count: req('integer'),
    output: req('array', { item: (v, at) => check('ExecuteOutput', v, executeOutput, at) }),
    data: opt('object', { item: stringMap }), error_name: opt('string'),
    error_message: opt('string'), error_traceback: opt('array', { item: strings }),
};

export const connectionInfo: Spec<ConnectionInfo> = {
    control_port: req('integer'), shell_port: req('integer'), stdin_port: req('integer'),
    hb_port: req('integer'), iopub_port: req('integer'), signature_scheme: req('string'),
    key: req('string'), transport: req('string'), ip: req('string'),
};

export const serverConfiguration: Spec<ServerConfiguration> = {
    idle_shutdown_hours: opt('integer'), resource_sample_interval_ms: opt('integer'),
    log_level: opt('string', { values: Object.values(ServerConfigurationLogLevelEnum) }),
};

export const newSessionResponse: Spec<NewSession200Response> = { session_id: req('string') };
