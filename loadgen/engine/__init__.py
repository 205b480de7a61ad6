"""A run's life: its session with the chain, its plan, its sender fleet on Ray, its phases, what it
stores and serves, and its verdicts on the generator."""
