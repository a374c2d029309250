"""STAT, skill-targeted training: skill labels, the Missing-Skill-Profile, STAT-Sel weights and STAT-Syn tasks.
The recipe itself (config, round structure) is `synthloop.loops.recipes.stat`."""
