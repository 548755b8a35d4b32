"""One ActiveSession: its status, execution queue, clients, history, a notebook's cells, and
the router that moves messages between clients and its KernelProcess."""
