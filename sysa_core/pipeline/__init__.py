"""`sysa run` and the notebooks: the per-seed chains of notebooks executed by papermill (`jobs`),
where they run (`executors`), the run itself (`run`), the helpers and tables the notebooks call
(`notebook`, `tables`) and the HTML reports and index (`report`)."""
