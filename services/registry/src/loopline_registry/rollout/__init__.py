"""Rollout controller: steps a canary up while live quality holds, promotes or rolls back."""
