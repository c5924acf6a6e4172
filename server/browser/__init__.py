"""The browser side: the WebSocket endpoint, one session per socket, and the socket fast path.

I/O-free rules (`protocol`, `outbox`, `limits`) under the adapters (`gateway`, `session`,
`ws_protocol`: uvicorn's WebSocket protocol with the shared-frame writer).
"""
