"""Series of runs: the minimum-pace search, sweeps over a parameter, and the study's training-time
estimate."""
