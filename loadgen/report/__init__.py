"""What a run leaves, read back: its summary, figures, HTML page, comparisons, the record set
beside the chain, and imports from other tools."""
