"""One job from a validated config: ``train`` (fit, test, results.json), ``evaluate`` (a checkpoint)."""
