"""Stage 7, presentation: the HTML report (figures come from :mod:`simarch.plots`)."""
