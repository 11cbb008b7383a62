"""`sysa run`, `sysa train` and the notebooks: a run folder's lifecycle (`folder`, with the checks
of `preflight` and the repair of `verify`), the ensembles (`ensembles`), the per-seed chains of
notebooks executed by papermill (`jobs`) and where they run (`executors`), the run itself (`run`)
and a training (`train`); what is kept in the folders (`store`); the figures of one model and of a
population (`plots`, `population_plots`), the report's sentences (`prose`), the helpers and tables
the notebooks call (`notebook`, `tables`) and the HTML reports and index (`report`)."""
