"""The chains loadgen talks to and starts: Anvil, geth and GoQuorum networks, their binaries and
processes, JSON-RPC access, fees and contracts."""
