"""Scheduled refinement: unattended ticks that consume new inbox data exactly once, run one round of a
recipe, and promote the new checkpoint only when it beats the current one."""
