"""sysa_core.pipeline.ensembles: a run's main and control ensembles, their folders, and the
ensembles read back from a run folder's manifest."""
from __future__ import annotations

from dataclasses import replace

from sysa_core import config
from sysa_core.pipeline import ensembles as ens_mod
from sysa_core.pipeline.preflight import manifest


def test_the_control_ensemble_differs_from_the_main_one_only_in_its_initialisation(tmp_path):
    cfg = config.resolve("smoke", ["lr=0.5"])
    main, control = ens_mod.ensembles(cfg, tmp_path, ["lr=0.5"], True)
    assert (main.label, main.folder, main.cfg, main.overrides) == ("main", tmp_path, cfg, ["lr=0.5"])
    assert control.label == "control" and control.folder == tmp_path / "control"
    assert control.overrides == ["lr=0.5", *ens_mod.CONTROL_OVERRIDES]
    assert cfg.model.init == "seed_compatible" and control.cfg.model.init == "independent"
    assert replace(control.cfg, model=replace(control.cfg.model, init=cfg.model.init)) == cfg
    assert [e.label for e in ens_mod.ensembles(cfg, tmp_path, [], False)] == ["main"]


def test_seed_folders_and_links(tmp_path):
    main, control = ens_mod.ensembles(config.resolve("smoke"), tmp_path, [], True)
    assert main.seed_dir(3) == tmp_path / "seed_3" and control.seed_dir(3) == tmp_path / "control" / "seed_3"
    assert main.rel(3, "pca.html") == "seed_3/pca.html" and control.rel(3, "pca.html") == "control/seed_3/pca.html"


def test_the_ensembles_of_a_manifest_are_those_it_was_written_for(tmp_path):
    cfg = config.resolve("smoke", ["lr=0.5"])
    written = ens_mod.ensembles(cfg, tmp_path, ["lr=0.5"], True)
    read = ens_mod.ensembles_of(tmp_path, manifest(cfg, ["lr=0.5"], [1, 2], True))
    assert [(e.label, e.folder, e.overrides) for e in read] == [(e.label, e.folder, e.overrides) for e in written]
    assert [e.cfg.training_id() for e in read] == [replace(e.cfg, seed=read[0].cfg.seed).training_id() for e in written]
