"""Resource usage of kernel process trees (CPU %, RSS, threads), sampled with psutil.

``sample`` runs on a worker thread: walking process trees must not block the event loop.
"""

from __future__ import annotations

import psutil

from session_ext.core.clock import now_ms


class ResourceSampler:
    def __init__(self) -> None:
        # psutil measures CPU % between two calls on the same Process object: keep them.
        self._processes: dict[int, psutil.Process] = {}

    def sample(self, pids: dict[str, int], period_ms: int) -> dict[str, dict]:
        """{session_id: ResourceUsage} for each session's kernel pid (those still alive)."""
        seen: dict[int, psutil.Process] = {}
        result = {}
        for session_id, pid in pids.items():
            try:
                root = self._process(pid, seen)
                tree = [root, *root.children(recursive=True)]
            except psutil.Error:
                continue
            cpu = memory = threads = 0.0
            for proc in tree:
                proc = self._process(proc.pid, seen, proc)
                try:
                    with proc.oneshot():
                        cpu += proc.cpu_percent(None)
                        memory += proc.memory_info().rss
                        threads += proc.num_threads()
                except psutil.Error:
                    continue
            result[session_id] = {
                "cpu_percent": round(cpu),
                "memory_bytes": int(memory),
                "thread_count": int(threads),
                "sampling_period_ms": period_ms,
                "timestamp": now_ms(),
            }
        self._processes = seen  # forget processes that have gone
        return result

    def _process(self, pid: int, seen: dict, fresh: psutil.Process | None = None) -> psutil.Process:
        proc = self._processes.get(pid) or seen.get(pid) or fresh or psutil.Process(pid)
        seen[pid] = proc
        return proc
