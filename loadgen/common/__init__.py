"""What every subsystem shares: the errors a user sees, JSON files, where the repository is."""
