"""``manage.py bench_chat``: the chat path under load, against a bare relay on the same layer.

- ``relay``: the baseline, a minimal consumer pair that only relays (its own ASGI app).
- ``servers``: daphne child processes and what /proc says about their CPU and memory.
- ``database``: the throwaway database the product is measured on, and its seed.
- ``load``: the load generator, real sockets speaking the documented protocol.
- ``runner``: the modes (rate, sat, ramp, idle sockets) and their figures.
"""
