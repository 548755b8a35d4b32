"""One kernel process: how it is launched (kernelspec, program check, environment, policy),
connected (ZeroMQ, handshake), watched (exit, heartbeat, resources, its own output) and
stopped, through jupyter_client's provisioners."""
