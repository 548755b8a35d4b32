import { IActiveSession, IJupyterMessage } from '../src/model';

/** An execute_request as the server keeps it in `execution_queue`. */
export function executeRequest(msgId: string, code: string): IJupyterMessage {
  return {
    header: {
      msg_id: msgId,
      msg_type: 'execute_request',
      session: 'client-session',
      username: 'user',
      date: '2025-01-01T00:00:00Z',
      version: '5.3'
    },
    parent_header: {},
    metadata: {},
    content: { code, silent: false, store_history: true },
    channel: 'shell'
  };
}

/** A complete ActiveSession as GET /supervisor/sessions returns it. */
export function makeSession(
  overrides: Partial<IActiveSession> = {}
): IActiveSession {
  return {
    session_id: 's1',
    argv: ['python', '-m', 'ipykernel_launcher', '-f', '{connection_file}'],
    process_id: 4242,
    username: 'user',
    display_name: 'Python 3 (ipykernel)',
    language: 'python',
    interrupt_mode: 'signal',
    initial_env: {},
    connected: true,
    started: '2025-01-01T10:00:00Z',
    session_mode: 'notebook',
    working_directory: '/home/user',
    notebook_uri: 'file:///home/user/dir/Untitled.ipynb',
    input_prompt: 'In [{}]: ',
    continuation_prompt: '...: ',
    execution_queue: { active: null, length: 0, pending: [] },
    status: 'idle',
    kernel_info: {},
    resource_usage: null,
    idle_seconds: 0,
    busy_seconds: 0,
    socket_path: null,
    kernel_id: 'k1',
    kernel_name: 'python3',
    tags: [],
    metadata: { path: 'dir/Untitled.ipynb' },
    last_activity: '2025-01-01T10:00:05Z',
    waiting_input: false,
    ...overrides
  };
}
