"""Stage 3, the run: build the kinds from an architecture, wire the calls, drive the
workload, and collect the records into a :class:`~simarch.results.result.Result`."""
