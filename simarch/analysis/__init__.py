"""Stage 5, static analyses: the capacity estimate and the single-point-of-failure analysis."""
