"""Per-model and population analyses of System A (README, Definitions 5 and beyond).

Modules: `precision` (the test trials, precision per duration, the I-w cosine and the
initialisation confound), `pca` (activity covariances, their PCs, participation ratios,
dimensionality), `alignment` (how I and w lie in the PC spaces, against chance, with their
float32/float64 spread), `plateau` (drift, generalisation over durations, hold time),
`dynamics` (fixed and slow points, Jacobian spectra, Lyapunov exponents), `metrics` (the one
pass that computes every per-model number), `stats` and `population` (the seeds of a run).
Every function is pure: nothing it is given is modified, and it reads or writes no file and
words no sentence (pipeline.store keeps the results, pipeline.prose says what they mean). The
analysis imports only the core (configuration, model, task, training), never the pipeline.
"""
