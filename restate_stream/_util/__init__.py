"""Private utilities: child processes, ports, polling."""
