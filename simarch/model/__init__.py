"""Stage 1, the model: units, distributions, keys, workload profiles, the spec models and the
architecture (the one ``networkx.DiGraph``). No SimPy here."""
