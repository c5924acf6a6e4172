"""The Amazon Connect side: what is polled, when, within which budget, and what is published.

I/O-free decisions (`scheduler`, `contact_state`, `interest`) under the adapters that do I/O
(`client`: the one aioboto3 client; `poller`; `coordination`: ownership and the shared budget;
`publisher`: commits to the bus).
"""
