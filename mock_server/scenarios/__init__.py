"""What a user writes: the scenario model, the step vocabulary, faults, match patterns, loading files
with their line numbers, and the catalog that picks a scenario for each request."""
