"""Stage 4, results: :class:`~simarch.results.result.Result` built from plain records, the SLO
judge, time binning, atomic writes and the text report of a run."""
