"""The audit service: a tamper-evident trail of what happened in the mesh (F10)."""
