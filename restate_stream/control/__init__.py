"""The control plane: the Restate admin API, plan, apply and status."""
