"""The web app's HTTP API, through FastAPI's TestClient: every endpoint, and bad requests
(uploads too large in bytes or pixels, wrong types, path traversal) answered with a
readable 4xx while the server keeps serving."""

from __future__ import annotations

import io as _io
import json
import os
import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from test_predict import bomb_png  # noqa: E402


@pytest.fixture(scope="session")
def app_run(tiny_synthetic, tmp_path_factory):
    from shiftbench.testing.runs import tiny_run

    return tiny_run(tmp_path_factory.getbasetemp() / "app_run", tiny_synthetic)


@pytest.fixture(scope="session")
def side_run(tmp_path_factory):
    """A second run folder (no models) with figures and a symlink pointing out of it."""
    root = tmp_path_factory.mktemp("side_run")
    (root / "manifest.json").write_text(json.dumps({"config": {}}))
    (root / "figures").mkdir()
    Image.new("RGB", (20, 10), (200, 0, 0)).save(root / "figures" / "curve.png")
    secret = tmp_path_factory.mktemp("outside") / "secret.txt"
    secret.write_text("top secret")
    os.symlink(secret, root / "figures" / "link.txt")
    os.symlink(secret.parent, root / "escape")
    return root


@pytest.fixture(scope="module")
def client(app_run, side_run):
    from shiftbench.app.server import create_app

    app = create_app([app_run, side_run], max_upload_bytes=300_000, max_pixels=1_000_000)
    with TestClient(app) as c:
        yield c


def png(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buf = _io.BytesIO()
    Image.fromarray(array).save(buf, format=fmt)
    return buf.getvalue()


def upload(client, data: bytes, name: str = "x.png") -> dict:
    r = client.post("/api/upload", files={"file": (name, data, "application/octet-stream")})
    assert r.status_code == 200, r.text
    return r.json()


def rid(client) -> str:
    return client.get("/api/runs").json()[0]["id"]


def test_pages(client, app_run):
    r = client.get("/")
    assert r.status_code == 200 and app_run.name in r.text and "/static/app.js" in r.text
    for view in ("inspect", "draw", "compare", "study"):
        page = client.get(f"/run/{rid(client)}/{view}")
        assert page.status_code == 200 and f'data-view="{view}"' in page.text
    assert "http://" not in client.get(f"/run/{rid(client)}/inspect").text.replace(
        "http://www.w3.org", ""
    )
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200
    assert client.get(f"/run/{rid(client)}/nope").status_code == 404
    r = client.get("/run/unknown/inspect")
    assert r.status_code == 404 and "unknown run" in r.json()["detail"]


def test_catalogue(client):
    runs = client.get("/api/runs").json()
    assert len(runs) == 2
    models = client.get(f"/api/runs/{runs[0]['id']}/models").json()["models"]
    assert {m["model"] for m in models} == {"patchcore", "ae"}
    assert client.get(f"/api/runs/{runs[1]['id']}/models").json()["models"] == []
    pert = client.get("/api/perturbations").json()
    assert "gaussian_blur" in {p["name"] for p in pert["perturbations"]}
    assert "mvtec-shift" in {s["name"] for s in pert["suites"]}


def test_upload_and_predict(client):
    rng = np.random.default_rng(0)
    info = upload(client, png(rng.integers(0, 255, (90, 70, 3), dtype=np.uint8)))
    assert info["format"] == "PNG" and (info["width"], info["height"]) == (70, 90)
    q = {"run": rid(client), "category": "brick", "model": "patchcore", "image": info["token"]}
    r = client.get("/api/predict", params=q)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"] == int(body["score"] >= body["threshold"])
    assert set(body["images"]) >= {"input", "overlay", "region"}
    assert body["images"]["overlay"].startswith("data:image/png;base64,")
    assert body["timing_ms"]["request"] > 0 and body["pixel_iou"] is None
    shifted = client.get("/api/predict", params={**q, "perturb": "gaussian_blur", "severity": 5})
    sb = shifted.json()
    assert sb["perturbation"]["params"]["gaussian_blur"] and sb["score"] != body["score"]
    assert sb["images"]["overlay"] != body["images"]["overlay"]
    same = client.get("/api/predict", params={**q, "perturb": "gaussian_blur", "severity": 0})
    assert same.json()["score"] == pytest.approx(body["score"])
    comp = client.get("/api/composite", params={**q, "perturb": "mvtec-shift", "severity": 2})
    assert comp.status_code == 200 and comp.headers["content-type"] == "image/png"
    assert Image.open(_io.BytesIO(comp.content)).size[0] > 500


def test_upload_type_decided_by_decoding(client):
    rng = np.random.default_rng(1)
    jpeg = png(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8), "JPEG")
    assert upload(client, jpeg, "looks_like.png")["format"] == "JPEG"
    grey16 = png(rng.integers(0, 65535, (40, 40), dtype=np.uint16))
    assert upload(client, grey16, "g.png")["mode"].startswith("I")
    rgba = png(rng.integers(0, 255, (40, 40, 4), dtype=np.uint8))
    token = upload(client, rgba, "a.png")["token"]
    q = {"run": rid(client), "category": "brick", "model": "ae", "image": token}
    assert client.get("/api/predict", params=q).status_code == 200
    r = client.post("/api/upload", files={"file": ("x.png", b"not an image at all", "image/png")})
    assert r.status_code == 415 and "unreadable image" in r.json()["detail"]
    gif = png(rng.integers(0, 255, (10, 10), dtype=np.uint8), "GIF")
    r = client.post("/api/upload", files={"file": ("x.png", gif, "image/png")})
    assert r.status_code == 415 and "GIF" in r.json()["detail"]
    r = client.post("/api/upload", files={"file": ("x.png", b"", "image/png")})
    assert r.status_code == 400


def test_upload_bounds(client, tmp_path):
    bomb = bomb_png(tmp_path / "bomb.png")
    r = client.post("/api/upload", files={"file": ("bomb.png", bomb.read_bytes(), "image/png")})
    assert r.status_code == 413
    assert "20000x20000" in r.json()["detail"] and "bomb" in r.json()["detail"]
    big = png(np.zeros((1100, 1000), np.uint8))  # 1.1 Mpx, small file: pixel limit
    r = client.post("/api/upload", files={"file": ("big.png", big, "image/png")})
    assert r.status_code == 413 and "1000x1100" in r.json()["detail"]
    noise = png(np.random.default_rng(2).integers(0, 255, (400, 400, 3), dtype=np.uint8))
    assert len(noise) > 300_000
    r = client.post("/api/upload", files={"file": ("noise.png", noise, "image/png")})
    assert r.status_code == 413 and "upload limit" in r.json()["detail"]
    huge = b"0" * 2_000_000
    r = client.post("/api/upload", files={"file": ("huge.png", huge, "image/png")})
    assert r.status_code == 413
    assert client.get("/").status_code == 200  # still serving


def test_bad_predict_requests(client):
    token = upload(client, png(np.zeros((32, 32, 3), np.uint8)))["token"]
    q = {"run": rid(client), "category": "brick", "model": "patchcore", "image": token}
    cases = [
        ({"model": "nope"}, 400, "saved models: ae, patchcore"),
        ({"category": "nope"}, 400, "saved categories: brick"),
        ({"fit": "shift-sev3"}, 400, "saved fits: clean"),
        ({"seed": 9}, 400, "saved seeds: 0"),
        ({"image": "deadbeef"}, 404, "not held by the server"),
        ({"mask": "deadbeef"}, 404, "not held by the server"),
        ({"run": "nope"}, 404, "unknown run"),
        ({"perturb": "nope"}, 400, "unknown perturbation"),
        ({"perturb": "/etc/passwd.yaml"}, 400, "not file paths"),
        ({"perturb": "gaussian_blur", "severity": 9}, 422, "severity"),
        ({"shift_seed": -1}, 422, ""),
        ({"seed": "abc"}, 422, ""),
    ]
    for extra, status, needle in cases:
        r = client.get("/api/predict", params={**q, **extra})
        assert r.status_code == status, (extra, r.text)
        assert needle in json.dumps(r.json()["detail"]), (extra, r.text)
    r = client.get("/api/predict", params={k: v for k, v in q.items() if k != "image"})
    assert r.status_code == 422
    assert client.get("/api/predict", params=q).status_code == 200  # still serving


def test_open_sample_thumb_and_scores(client, app_run):
    run = rid(client)
    rows = client.get(f"/api/runs/{run}/scores", params={"model": "ae"}).json()["rows"]
    assert rows and all(r["model"] == "ae" for r in rows)
    anomalous = next(r for r in rows if r["label"] == 1)
    r = client.post(f"/api/runs/{run}/open", data={"sample_id": anomalous["sample_id"]})
    assert r.status_code == 200, r.text
    opened = r.json()
    assert opened["mask_token"] and opened["label"] == 1
    q = {
        "run": run,
        "category": "brick",
        "model": "ae",
        "image": opened["token"],
        "mask": opened["mask_token"],
    }
    body = client.get("/api/predict", params=q).json()
    assert body["pixel_iou"] is not None and "truth" in body["images"]
    assert body["score"] == pytest.approx(anomalous["score"], rel=1e-4)  # as in the study
    thumb = client.get(f"/api/runs/{run}/thumb", params={"sample_id": anomalous["sample_id"]})
    assert thumb.status_code == 200 and Image.open(_io.BytesIO(thumb.content)).size == (96, 96)
    assert (
        client.post(f"/api/runs/{run}/open", data={"sample_id": "../../etc/passwd"}).status_code
        == 404
    )
    assert client.get(f"/api/runs/{run}/thumb", params={"sample_id": "nope"}).status_code == 404
    assert (
        client.get(f"/api/runs/{run}/thumb", params={"sample_id": "x", "size": 99999}).status_code
        == 422
    )


def test_defect(client):
    run = rid(client)
    rng = np.random.default_rng(3)
    token = upload(client, png(rng.integers(90, 110, (64, 64, 3), dtype=np.uint8)))["token"]
    stroke = np.zeros((384, 384, 4), np.uint8)
    stroke[150:230, 100:300] = (255, 0, 0, 150)
    base = {"run": run, "category": "brick", "model": "patchcore", "image": token}
    scores = {}
    for kind in ("scratch", "stain", "patch"):
        r = client.post(
            "/api/defect",
            data={**base, "kind": kind, "color": "#ff00ff"},
            files={"stroke": ("s.png", png(stroke), "image/png")},
        )
        assert r.status_code == 200, r.text
        d = r.json()
        assert 0.05 < d["mask_fraction"] < 0.2
        q = {**base, "image": d["token"], "mask": d["mask_token"]}
        body = client.get("/api/predict", params=q).json()
        assert body["pixel_iou"] is not None
        scores[kind] = body["score"]
    plain = client.get("/api/predict", params=base).json()["score"]
    assert scores["scratch"] != plain
    empty = png(np.zeros((384, 384, 4), np.uint8))
    r = client.post("/api/defect", data=base, files={"stroke": ("s.png", empty, "image/png")})
    assert r.status_code == 400 and "stroke is empty" in r.json()["detail"]
    r = client.post(
        "/api/defect",
        data={**base, "kind": "laser"},
        files={"stroke": ("s.png", png(stroke), "image/png")},
    )
    assert r.status_code == 400 and "scratch, stain, patch" in r.json()["detail"]
    r = client.post(
        "/api/defect",
        data={**base, "color": "red"},
        files={"stroke": ("s.png", png(stroke), "image/png")},
    )
    assert r.status_code == 400 and "hex colour" in r.json()["detail"]


def test_study_endpoints(client):
    run = rid(client)
    man = client.get(f"/api/runs/{run}/manifest").json()
    assert "config" in man
    m = client.get(f"/api/runs/{run}/metrics").json()
    assert m["columns"][:5] == ["category", "model", "seed", "protocol", "severity"]
    assert "image_auroc" in m["columns"] and len(m["rows"]) == 2
    assert m["filters"]["model"] == ["ae", "patchcore"]
    only = client.get(f"/api/runs/{run}/metrics", params={"model": "ae"}).json()
    assert len(only["rows"]) == 1 and only["rows"][0][1] == "ae"
    none = client.get(f"/api/runs/{run}/metrics", params={"protocol": "shift-adapt"}).json()
    assert none["rows"] == []
    assert client.get(f"/api/runs/{run}/figures").json() == {"figures": [], "report": False}


def test_files_only_inside_runs(client, side_run):
    side = client.get("/api/runs").json()[1]["id"]
    figures = client.get(f"/api/runs/{side}/figures").json()["figures"]
    assert figures == [{"path": "figures/curve.png", "title": "curve", "caption": ""}]
    ok = client.get(f"/runs/{side}/files/figures/curve.png")
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
    assert client.get(f"/runs/{side}/files/manifest.json").status_code == 200
    bad = [
        "../" * 6 + "etc/passwd",
        "figures/../../" + side_run.name + "/manifest.json/../../../etc/passwd",
        "%2e%2e/%2e%2e/etc/passwd",
        "..%2f..%2fetc%2fpasswd",
        "/etc/passwd",
        "%2fetc%2fpasswd",
        "figures/link.txt",  # a symlink to a file outside
        "escape/secret.txt",  # a symlinked folder outside
    ]
    for rel in bad:
        r = client.get(f"/runs/{side}/files/{rel}")
        assert r.status_code in (403, 404), (rel, r.status_code)
        assert "top secret" not in r.text and "root:" not in r.text
    assert client.get(f"/runs/{side}/files/figures/nope.png").status_code == 404
    run = client.get("/api/runs").json()[0]["id"]
    pt = client.get(f"/runs/{run}/files/models/brick__ae__seed0__clean.pt")
    assert pt.status_code == 403
    assert client.get("/").status_code == 200


def test_create_app_rejects_non_runs(tmp_path):
    from shiftbench.app.server import create_app
    from shiftbench.errors import ShiftbenchError

    with pytest.raises(ShiftbenchError, match="not a run directory"):
        create_app([tmp_path])


def test_loopback_and_cli_errors(capsys, tmp_path):
    from shiftbench.cli.app_cmd import is_loopback
    from shiftbench.cli.main import main

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    with pytest.raises(SystemExit) as exit_:
        main(["app", str(tmp_path)])
    assert exit_.value.code == 2
    assert "not a run directory" in capsys.readouterr().err


def test_serve_warns_when_not_loopback(app_run, monkeypatch, capsys):
    import uvicorn

    from shiftbench.cli.main import main

    seen = {}
    monkeypatch.setattr(
        uvicorn, "run", lambda app, host, port, **kw: seen.update(host=host, app=app)
    )
    port = str(_free_port())
    main(["app", str(app_run), "--host", "0.0.0.0", "--port", port])
    err = capsys.readouterr().err
    assert seen["host"] == "0.0.0.0" and "warning: binding to 0.0.0.0" in err
    main(["app", str(app_run), "--port", port, "--device", "cpu"])
    out = capsys.readouterr()
    assert seen["host"] == "127.0.0.1" and "warning" not in out.err
    assert "models on cpu" in out.out and seen["app"].state.sb.device == "cpu"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_refuses_busy_port_and_bad_device(app_run, monkeypatch, capsys):
    """A port in use, a misspelt or absent device: one line naming the option and the fix,
    before uvicorn starts."""
    import torch
    import uvicorn

    from shiftbench.cli.main import main

    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: pytest.fail("uvicorn started"))
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(SystemExit) as exit_:
            main(["app", str(app_run), "--port", str(port), "--device", "cpu"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == f"error: port {port} is in use on 127.0.0.1; stop the program using it or pass --port N"
    )
    bad = [("gpu", "--device 'gpu': unknown device")]
    if not torch.cuda.is_available():
        bad.append(("cuda", "--device 'cuda': torch sees no CUDA GPU"))
    for device, needle in bad:
        with pytest.raises(SystemExit):
            main(["app", str(app_run), "--port", str(_free_port()), "--device", device])
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1


def test_small_upload_warns_and_models_loaded(app_run):
    """A 1x1 upload is scored with a warning naming both sizes; /models says which models
    are in memory (the page says "loading" for the others) and where they run."""
    from shiftbench.app.server import create_app

    with TestClient(create_app([app_run], preload=True)) as c:
        run = rid(c)
        app_state = c.app.state.sb
        app_state.warm()
        assert app_state._warming is not None and not app_state._warming.is_alive()
        before = c.get(f"/api/runs/{run}/models").json()
        assert before["device"] == "cpu" and not any(m["loaded"] for m in before["models"])
        q = {"run": run, "category": "brick", "model": "patchcore"}
        dot = upload(c, png(np.full((1, 1, 3), 120, np.uint8)), "dot.png")
        body = c.get("/api/predict", params={**q, "image": dot["token"]}).json()
        (warning,) = body["warnings"]
        assert "1x1 px" in warning and "64x64 px" in warning
        ok = upload(c, png(np.full((40, 32, 3), 120, np.uint8)))["token"]
        assert c.get("/api/predict", params={**q, "image": ok}).json()["warnings"] == []
        after = {m["model"]: m["loaded"] for m in c.get(f"/api/runs/{run}/models").json()["models"]}
        assert after == {"patchcore": True, "ae": False}


def test_tiny_run_is_reused(app_run, tiny_synthetic):
    from shiftbench.testing.runs import tiny_run

    stamp = Path(app_run, "manifest.json").stat().st_mtime
    assert tiny_run(app_run, tiny_synthetic) == app_run
    assert Path(app_run, "manifest.json").stat().st_mtime == stamp


# -- Study: a two-category run with figures ---------------------------------------------------
def study_run(path: Path, images: list[str], figure) -> Path:
    """A finished two-category, two-model run (written by the runner's writer, so its
    metrics hold the ``mean`` category) with report-named figures drawn by
    ``figure(path, title)``; ``images``: real image files for its test samples."""
    from shiftbench.results import schema
    from shiftbench.testing.fake_run import write_run

    cats, models = ("bottle", "screw"), ("patchcore", "anomalib-padim")
    units, splits = {}, []
    for ci, cat in enumerate(cats):
        for i in range(6):
            splits.append((0, f"{cat}/test/{i}", cat, "test", i % 2, "good" if i % 2 == 0
                           else "crack", images[(6 * ci + i) % len(images)], None))  # fmt: skip
        for mi, model in enumerate(models):
            scores = pd.DataFrame(
                [(cat, model, 0, "clean", np.nan, "test", f"{cat}/test/{i}", i % 2,
                  "good" if i % 2 == 0 else "crack", 0.1 * i + 0.05 * mi, 0.35,
                  int(0.1 * i + 0.05 * mi >= 0.35), 0.3) for i in range(6)],
                columns=list(schema.SCORE_COLUMNS),
            )  # fmt: skip
            metrics = pd.DataFrame(
                [(cat, model, 0, "clean", np.nan, "image_auroc", 0.6 + 0.3 * ci - 0.1 * mi),
                 (cat, model, 0, "clean", np.nan, "pixel_aupro", 0.5 + 0.1 * ci + 0.1 * mi)],
                columns=list(schema.METRIC_COLUMNS),
            )  # fmt: skip
            units[f"{cat}__{model}__seed0__clean"] = (scores, metrics)
    run = write_run(
        path,
        units,
        splits=pd.DataFrame(splits, columns=list(schema.SPLIT_COLUMNS)),
        manifest={"seeds": [0]},
        protocols=["clean"],
    )
    (run / "figures").mkdir()
    for stem, title in (
        ("roc_pr_screw", "ROC and PR, screw"),
        ("custom_plot", "something else"),
        ("scores_bottle_anomalib-padim", "Scores, bottle / anomalib-padim"),
        ("degradation_image_auroc", "Image AUROC per protocol"),
        ("qualitative_screw_patchcore", "Qualitative, screw / patchcore"),
    ):
        figure(run / "figures" / f"{stem}.png", title)
    return run


def _blank_figure(path: Path, title: str) -> None:
    Image.new("RGB", (40, 30), (250, 250, 250)).save(path)


def test_study_mean_last_and_figure_captions(tmp_path, tiny_synthetic):
    from shiftbench.app.server import create_app

    images = sorted(str(p) for p in Path(tiny_synthetic).rglob("test/*/*.png"))
    run = study_run(tmp_path / "study", images, _blank_figure)
    with TestClient(create_app([run])) as c:
        body = c.get("/api/runs/study/metrics").json()
        cats = [r[0] for r in body["rows"]]
        assert cats == ["bottle", "bottle", "screw", "screw", "mean", "mean"]
        only = c.get("/api/runs/study/metrics", params={"model": "patchcore"}).json()
        assert [r[0] for r in only["rows"]] == ["bottle", "screw", "mean"]
        figs = c.get("/api/runs/study/figures").json()["figures"]
    assert [(f["path"], f["title"]) for f in figs] == [
        ("figures/degradation_image_auroc.png", "Degradation"),
        ("figures/roc_pr_screw.png", "ROC and PR, screw"),
        ("figures/scores_bottle_anomalib-padim.png", "Scores, bottle / anomalib-padim"),
        ("figures/qualitative_screw_patchcore.png", "Qualitative, screw / patchcore"),
        ("figures/custom_plot.png", "custom plot"),
    ]
    assert figs[2]["caption"].startswith("Test-score distributions and thresholds, bottle / ")


def test_figure_names_split_with_the_runs_names():
    from shiftbench.app.study import describe

    cats, models = ["metal_nut", "screw"], ["patchcore", "anomalib-padim"]
    assert describe("scores_metal_nut_anomalib-padim", cats, models)[1] == (
        "Scores, metal_nut / anomalib-padim"
    )
    assert describe("qualitative_metal_nut_patchcore", cats, [])[1] == (
        "Qualitative, metal_nut / patchcore"
    )
    assert describe("roc_pr_metal_nut", cats, models)[1] == "ROC and PR, metal_nut"
    assert describe("cd_shift-noadapt", cats, models)[1] == "Critical differences, shift-noadapt"
    assert describe("severity_image_auroc_by_category", [], [])[1] == "Severity curves per category"
    assert describe("severity_image_auroc", [], [])[1] == "Severity curves"
    assert describe("heatmap_pixel_aupro", [], [])[1] == "Pixel PRO heat map"
