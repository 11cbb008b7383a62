"""`sysa reproduce` (sysa_core.pipeline.reproduce): the original's published files fetched with
pooch over HTTP and checked by sha256, here from a loopback server that mirrors the repository's
paths with the copies in ../shared/reference, then evaluated beside the published table."""
from __future__ import annotations

import functools
import http.server
import threading

import pytest
from conftest import assert_user_error, run_cli

from sysa_core import original

FILES = ("sys_A1_state.pth", "sys_A2_state.pth")


@pytest.fixture(scope="module")
def mirror(reference_dir, tmp_path_factory):
    """http://127.0.0.1:<port>/ serving the repository's layout for the two reference files."""
    root = tmp_path_factory.mktemp("mirror")
    for name in FILES:
        dest = root / original.source()["files"][name]["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((reference_dir / name).read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_reproduce_fetches_checks_and_prints_beside_the_published_values(mirror, tmp_path):
    root, url = mirror
    cache = tmp_path / "cache"
    proc = run_cli("reproduce", "--files", ",".join(FILES), "--base-url", url, "--cache", cache, "--quiet")
    assert proc.returncode == 0, proc.stderr
    rows = [ln.split() for ln in proc.stdout.splitlines()[1:]]
    assert len(rows) == 4
    table = original.published_table()
    for name, seed, measure, published, sysa, rel in rows:
        assert float(published) == pytest.approx(table[int(seed)][measure], rel=1e-8)
        assert float(rel) < 5e-6, (name, measure, rel)
    assert sorted(p.name for p in cache.iterdir()) == sorted(FILES)
    for name in FILES:  # the cache serves a second run: nothing is fetched again
        (root / original.source()["files"][name]["path"]).unlink()
    again = run_cli("reproduce", "--files", FILES[0], "--base-url", url, "--cache", cache, "--quiet")
    assert again.returncode == 0, again.stderr


def test_a_file_whose_sha256_differs_is_refused(mirror, tmp_path):
    root, url = mirror
    bad = root / original.source()["files"]["sys_A2_state.pth"]["path"]
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_bytes(b"not the published file")
    proc = run_cli("reproduce", "--files", "sys_A2_state.pth", "--base-url", url, "--cache", tmp_path, "--quiet")
    assert_user_error(proc.stderr, proc.returncode, "sys_A2_state.pth", "hash")


def test_unknown_file_and_unreachable_server_are_one_line(tmp_path):
    proc = run_cli("reproduce", "--files", "sys_A9.pth", "--cache", tmp_path)
    assert_user_error(proc.stderr, proc.returncode, "--files: unknown sys_A9.pth")
    proc = run_cli("reproduce", "--files", "sys_A1_state.pth", "--base-url", "http://127.0.0.1:9", "--cache",
                   tmp_path, "--quiet")
    assert_user_error(proc.stderr, proc.returncode, "could not be fetched", "--base-url")


def test_the_published_table_is_carried_with_its_source():
    table, src = original.published_table(), original.source()
    assert sorted(table) == list(range(1, 21))
    assert table[1]["precision"] == 0.01618705317378044 and table[2]["weight_correlation"] == 0.8195869326591492
    assert src["commit"] == "4ba20360a8dd1ed735d1e9e835ffb7db79571c6c" and src["raw_base_url"].endswith(src["commit"] + "/")
    assert src["table"]["path"] == "experiment-a/results/model_results.txt"
