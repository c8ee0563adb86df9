"""The adapters around the pure parts: asyncio, sockets, files, clocks.

The only package that does I/O. It may import everything else; nothing
else imports it.
"""
