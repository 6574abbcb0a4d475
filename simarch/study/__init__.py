"""Stage 6, studies: replications and executors, comparisons of designs as load grows, and
factorial sweeps to a resumable dataset."""
