"""What a user gives loadgen: the experiment's YAML schema, its reference page, and the keys."""
