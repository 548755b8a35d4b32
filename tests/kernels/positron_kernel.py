"""A real ipykernel whose kernel_info carries Positron's prompts (language_info.positron)."""

from ipykernel.ipkernel import IPythonKernel
from ipykernel.kernelapp import IPKernelApp


class PositronPromptKernel(IPythonKernel):
    @property
    def language_info(self):
        info = dict(super().language_info)
        info["positron"] = {"input_prompt": "In> ", "continuation_prompt": "..> "}
        return info


if __name__ == "__main__":
    import sys

    # Straight to the process's stderr (not a Jupyter message): the supervisor's `output`.
    print("positron kernel starting", file=sys.stderr, flush=True)
    IPKernelApp.launch_instance(kernel_class=PositronPromptKernel)
