"""Kernel iopub messages as nbformat v4 outputs, and the list of one request's outputs as a
notebook would hold it (consecutive streams of one name merged, ``clear_output`` and
``update_display_data`` applied)."""

from __future__ import annotations

from typing import Any

OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")


def output_of(msg: dict[str, Any]) -> dict[str, Any] | None:
    """The nbformat output an iopub message carries, or for ``clear_output`` and
    ``update_display_data`` an item of that ``output_type`` (not nbformat's: a streaming
    reader needs them to redraw); None for the others (status, execute_input, comms)."""
    msg_type = msg["header"]["msg_type"]
    content = msg.get("content") or {}
    if msg_type == "stream":
        return {
            "output_type": "stream",
            "name": content.get("name", "stdout"),
            "text": content.get("text", ""),
        }
    if msg_type in ("display_data", "update_display_data", "execute_result"):
        output: dict[str, Any] = {
            "output_type": msg_type,
            "data": content.get("data", {}),
            "metadata": content.get("metadata", {}),
        }
        if msg_type == "execute_result":
            output["execution_count"] = content.get("execution_count")
        display_id = (content.get("transient") or {}).get("display_id")
        if display_id:
            output["transient"] = {"display_id": display_id}
        return output
    if msg_type == "error":
        return {
            "output_type": "error",
            "ename": content.get("ename", ""),
            "evalue": content.get("evalue", ""),
            "traceback": content.get("traceback", []),
        }
    if msg_type == "clear_output":
        return {"output_type": "clear_output", "wait": bool(content.get("wait"))}
    return None


class OutputList:
    """One request's outputs as a notebook cell holds them."""

    def __init__(self) -> None:
        self.outputs: list[dict[str, Any]] = []
        self._clear_on_next = False

    def add(self, item: dict[str, Any]) -> None:
        kind = item["output_type"]
        if kind == "clear_output":
            if item["wait"]:
                self._clear_on_next = True
            else:
                self.outputs = []
                self._clear_on_next = False
            return
        if kind == "update_display_data":
            display_id = item.get("transient", {}).get("display_id")
            for output in self.outputs:
                if display_id and output.get("transient", {}).get("display_id") == display_id:
                    output["data"], output["metadata"] = item["data"], item["metadata"]
            return
        if self._clear_on_next:
            self.outputs = []
            self._clear_on_next = False
        last = self.outputs[-1] if self.outputs else None
        if (
            kind == "stream"
            and last is not None
            and last["output_type"] == "stream"
            and last["name"] == item["name"]
        ):
            last["text"] += item["text"]
            return
        self.outputs.append(dict(item))

    def nbformat(self) -> list[dict[str, Any]]:
        """The outputs without the transient display ids (nbformat has no such field)."""
        return [{k: v for k, v in o.items() if k != "transient"} for o in self.outputs]
