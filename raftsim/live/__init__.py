"""The live world: one OS process per server, real TCP between them, durable storage.

``transport`` carries msgpack-rpc frames between servers over TCP; ``agent`` runs one
server (its storage, its transport, its HTTP API) in a process; ``launcher`` starts a
cluster of agent processes on loopback.
"""
