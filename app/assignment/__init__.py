"""Auto-assignment: rules pick a team, strategies pick an agent, workers run it."""
