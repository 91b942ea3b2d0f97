"""The asyncio server that drives one core node: timers, persistence, sending, applying."""
