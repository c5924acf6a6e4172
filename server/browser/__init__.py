"""The browser side: the WebSocket endpoint, one session per socket, and the socket fast path.

I/O-free rules (`delivery`: one socket's delivery state; `protocol`, `outbox`, `limits`) and
a socket's access (`session_access`: its grant and deadlines, loop timers), under the
adapters: `gateway` (the endpoint), `session` (one socket's loops), `fanout` (the bus's
listener per channel, which frames each message once and writes caught-up sockets itself) and
`ws_protocol` (uvicorn's WebSocket protocol with the shared-frame writer and the sink it lends
the fan-out).
"""
