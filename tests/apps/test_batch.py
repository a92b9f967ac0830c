"""``python -m memo_model batch`` on a local Ray (2 CPUs) with tiny random models.

Every finished video is compared byte for byte with the single-job command's output for the
same job; a worker killed mid-job must be retried and resume; bad jobs fail alone; a re-run skips.
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from memo_model.apps import batch, batch_jobs, cli
from memo_testing import batch_faults as faults
from memo_testing.audio_fakes import write_wav
from memo_testing.paths import REPO, TESTS

COMMON = ["--size", "64", "--steps", "2", "--device", "cpu"]       # the batch-wide defaults


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Tiny models and inputs; image/audio names are relative to the jobs files in `root`."""
    from PIL import Image

    from memo_model.apps.tiny_frontends import write_demo_portrait, write_demo_voice, write_tiny_models

    root = tmp_path_factory.mktemp("batch")
    write_tiny_models(root / "models")
    (root / "in").mkdir()
    write_demo_portrait(root / "in" / "face.png")
    write_demo_voice(root / "in" / "short.wav", seconds=0.5)      # 15 frames: 1 clip
    write_demo_voice(root / "in" / "long.wav", seconds=1.2)       # 36 frames: 3 clips
    Image.fromarray(np.zeros((96, 96, 3), np.uint8)).save(root / "in" / "black.png")
    write_wav(root / "in" / "silent.wav", np.zeros(8000))
    return root


def single_job(tiny, out, image, audio, *options):
    """The single-job command's mp4 for a job (one torch thread, as a CPU batch worker uses)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = cli.main([str(a) for a in ["--image", tiny / "in" / image, "--audio", tiny / "in" / audio,
                                          "--output", out, "--models", tiny / "models", *COMMON, *options]])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return out.read_bytes()


# ------------------------------------------------------------------ without a cluster

def test_importing_the_cli_and_the_node_pack_does_not_import_ray():
    code = ("import sys, importlib.util as u; "
            "import memo_model.apps.cli, memo_model.apps.runner, memo_model.output.render; "
            f"s = u.spec_from_file_location('memo_pack', r'{REPO / '__init__.py'}', "
            f"submodule_search_locations=[r'{REPO}']); m = u.module_from_spec(s); "
            "sys.modules['memo_pack'] = m; s.loader.exec_module(m); "
            "print('ray' in sys.modules, 'memo_model.apps.batch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "False"]


def test_without_ray_the_batch_command_says_how_to_install(tiny, tmp_path):
    jobs = write_jsonl(tmp_path / "jobs.jsonl", [{"image": str(tiny / "in" / "face.png"),
                                                  "audio": str(tiny / "in" / "short.wav")}])
    code = ("import sys; sys.modules['ray'] = None; from memo_model.apps.cli import main; "
            f"raise SystemExit(main(['batch', r'{jobs}', '--out', r'{tmp_path / 'out'}', "
            f"'--models', r'{tiny / 'models'}']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 2
    assert 'pip install "ray[default]"' in out.stderr
    assert not list((tmp_path / "out").glob("*.mp4"))


def test_jobs_file_lines_become_single_job_options(tiny, tmp_path):
    """JSON lines and CSV: relative paths, batch defaults, per-job overrides, per-line errors."""
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    shutil.copy(tiny / "in" / "face.png", jobs_dir / "me.png")
    rows = [{"image": "me.png", "audio": "v.wav"},
            {"image": "me.png", "audio": "v.wav", "output": "x/seven.mp4", "seed": 7, "paste_back": True,
             "steps": 5, "framing": "resize", "Emotion": "sad"},
            {"image": "me.png", "audio": "v.wav", "output": "bad.mp4", "models": "/elsewhere"},
            {"image": "me.png", "audio": "v.wav", "output": "bad2.mp4", "stepz": 3},
            {"image": "me.png", "audio": "v.wav", "output": "bad3.mp4", "framing": "zoom"},
            {"image": "me.png", "audio": "v.wav", "output": "x/seven.mp4"},
            {"audio": "v.wav", "output": "noimage.mp4"}]
    jobs_file = write_jsonl(jobs_dir / "jobs.jsonl", rows)
    with open(jobs_file, "a") as fh:
        fh.write("# a comment\n\n{not json\n")
    defaults = batch_jobs.parse_defaults(["--models", str(tiny / "models"), "--steps", "3", "--paste-back",
                                          "--download"])
    assert defaults.machine.models == (tiny / "models").resolve() and defaults.machine.download is False
    jobs = batch_jobs.read_jobs(jobs_file, tmp_path / "out", defaults)
    assert [j.line for j in jobs] == [1, 2, 3, 4, 5, 6, 7, 10]
    first, second = jobs[0].job, jobs[1].job
    assert first.picture == jobs_dir / "me.png" and first.voice == jobs_dir / "v.wav"
    assert first.output.path == tmp_path / "out" / "me_v.mp4" and jobs[0].name == "me_v.mp4"
    assert (first.sampling.steps, first.sampling.seed, first.framing.width, first.framing.height,
            first.output.paste_back, first.framing.mode) == (3, 42, 512, 512, True, "crop")
    assert first.output.resume is True
    assert (second.sampling.steps, second.sampling.seed, second.framing.mode, second.output.paste_back) == \
        (5, 7, "resize", True)
    assert second.audio.emotion == "sad" and first.audio.emotion == ""
    assert second.output.path == tmp_path / "out" / "x" / "seven.mp4"
    errors = [j.error for j in jobs[2:]]
    assert "line 3: models: set on the batch command line" in errors[0]
    assert "line 4: unknown field(s) stepz" in errors[1] and "frames_per_clip" in errors[1]
    assert "line 5:" in errors[2] and "'zoom'" in errors[2]
    assert errors[3] == ("line 6: output x/seven.mp4 is also written by line 2; give each job its own "
                         "output name")
    assert errors[4].startswith("line 7: image missing")
    assert errors[5].startswith("line 10: not valid JSON")
    assert all(j.job is None for j in jobs[2:5]) and jobs[0].error is None and jobs[1].error is None

    csv_file = jobs_dir / "jobs.csv"
    csv_file.write_text("image,audio,output,seed,paste_back,cfg\n"
                        "me.png,v.wav,a.mp4,,false,\n"
                        "me.png,v.wav,b.mp4,9,,2.5\n"
                        "me.png,v.wav,c.mp4,1,maybe,\n")
    a, b, c = batch_jobs.read_jobs(csv_file, tmp_path / "out", defaults)
    assert (a.job.sampling.seed, a.job.output.paste_back, a.job.sampling.cfg) == (42, False, 3.5)  # empty: default
    assert (b.job.sampling.seed, b.job.output.paste_back, b.job.sampling.cfg) == (9, True, 2.5)
    assert c.error == "line 4: paste_back: 'maybe' is not true or false"

    missing = write_jsonl(tmp_path / "one.jsonl", [{"image": str(jobs_dir / "me.png"), "audio": "v.wav"}])
    with pytest.raises(batch_jobs.BatchError, match="reference_net/diffusion_pytorch_model.safetensors"):
        batch.run_batch(missing, tmp_path / "out", ["--models", str(tmp_path / "nomodels")], progress=False)
    with pytest.raises(batch_jobs.BatchError, match="--image: not a batch option"):
        batch_jobs.parse_defaults(["--image", "x.png"])
    with pytest.raises(batch_jobs.BatchError, match="unrecognized arguments: --stepz"):
        batch_jobs.parse_defaults(["--stepz", "3"])
    with pytest.raises(batch_jobs.BatchError, match="--face: not a batch option"):
        batch_jobs.parse_defaults(["--face", "0=a.wav"])


def test_dialogue_lines_give_faces_instead_of_audio(tiny, tmp_path):
    """faces: --face texts or objects (JSON lines), texts separated by | (CSV); mix; every mistake per line."""
    from memo_model.face.selection import FaceChoice

    defaults = batch_jobs.parse_defaults(["--models", str(tiny / "models"), "--seed", "5"])
    rows = [{"image": "two.png", "faces": ["0=a.wav", {"face": [300, 100], "voice": "b.wav", "channel": 1,
                                                       "emotion": "sad", "seed": 9}], "mix": "m.wav"},
            {"image": "two.png", "faces": ["0=a.wav;seed=3"], "output": "one.mp4", "steps": 4},
            {"image": "two.png", "faces": ["0=a.wav"], "audio": "v.wav", "output": "both.mp4"},
            {"image": "two.png", "faces": ["zero=a.wav"], "output": "bad.mp4"},
            {"image": "two.png", "faces": [{"face": 0, "voice": "a.wav", "volume": 3}], "output": "bad2.mp4"},
            {"image": "two.png", "faces": ["0=a.wav"], "framing": "resize", "output": "bad3.mp4"},
            {"image": "two.png", "audio": "v.wav", "mix": "m.wav", "output": "bad4.mp4"}]
    jobs = batch_jobs.read_jobs(write_jsonl(tmp_path / "jobs.jsonl", rows), tmp_path / "out", defaults)
    first, second = jobs[0].job, jobs[1].job
    assert jobs[0].name == "two_a_b.mp4" and first.voice is None and first.mix == tmp_path / "m.wav"
    assert [(s.face, s.voice, s.channel, s.emotion, s.seed, s.name) for s in first.speakers] == [
        (FaceChoice(index=0), tmp_path / "a.wav", None, "", None, "faces[0] 0=a.wav"),
        (FaceChoice(point=(300, 100)), tmp_path / "b.wav", 1, "sad", 9, "faces[1]")]
    assert first.sampling.seed == 5 and first.output.resume is True
    assert second.speakers[0].seed == 3 and second.sampling.steps == 4
    errors = [j.error for j in jobs[2:]]
    assert errors[0] == "line 3: audio and faces: a dialogue takes each face's voice from faces; drop audio"
    assert errors[1].startswith("line 4: faces[0]: 'zero=a.wav': face 'zero': give an index")
    assert errors[2].startswith("line 5: faces[0]: an object with face and voice") and "volume" in errors[2]
    assert errors[3] == ("line 6: framing resize: a dialogue crops each face and pastes it back into the picture; "
                         "use crop")
    assert errors[4] == "line 7: mix: a soundtrack for a dialogue; give the faces' voices with faces too"
    csv_file = tmp_path / "jobs.csv"
    csv_file.write_text("image,faces,output\ntwo.png,0=a.wav | 1=both.wav:1,c.mp4\n")
    (row,) = batch_jobs.read_jobs(csv_file, tmp_path / "out", defaults)
    assert [(str(s.face), s.voice.name, s.channel) for s in row.job.speakers] == [
        ("face index 0", "a.wav", None), ("face index 1", "both.wav", 1)]


def test_worker_plan_follows_the_cluster_resources():
    """One worker per --gpus-per-job GPUs (capped by the jobs), CPU workers otherwise."""
    from types import SimpleNamespace

    def plan(resources, device=None, workers=None, gpus_per_job=1.0, jobs=10):
        ray = SimpleNamespace(cluster_resources=lambda: resources)
        return batch._worker_plan(ray, SimpleNamespace(device=device), workers, gpus_per_job, 1, jobs)

    assert plan({"CPU": 32, "GPU": 4}) == (4, {"num_gpus": 1.0, "num_cpus": 1}, "cuda", None)
    assert plan({"CPU": 32, "GPU": 4}, gpus_per_job=0.5) == (8, {"num_gpus": 0.5, "num_cpus": 1}, "cuda", None)
    assert plan({"CPU": 32, "GPU": 4}, jobs=3)[0] == 3
    assert plan({"CPU": 32, "GPU": 4}, device="cpu", workers=2) == (2, {"num_cpus": 1}, "cpu", 1)
    assert plan({"CPU": 2}) == (1, {"num_cpus": 1}, "cpu", 1)
    with pytest.raises(batch_jobs.BatchError, match="--gpus-per-job 2: the cluster has 1 GPU"):
        plan({"CPU": 8, "GPU": 1}, gpus_per_job=2)
    with pytest.raises(batch_jobs.BatchError, match="--device cuda: the Ray cluster has no GPUs"):
        plan({"CPU": 8}, device="cuda")


# ------------------------------------------------------------------ on a local Ray

@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A local 2-CPU Ray for this module; its workers can be told to die (memo_testing/batch_faults.py)."""
    ray = pytest.importorskip("ray")
    control = tmp_path_factory.mktemp("faults")
    session = tempfile.mkdtemp(prefix="memo-ray-test-")          # short: Ray's socket paths
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 << 20, _temp_dir=session,
             log_to_driver=False, runtime_env={
                 "env_vars": {"PYTHONPATH": os.pathsep.join([str(REPO), str(TESTS)]),
                              "MEMO_TEST_FAULTS": str(control)},
                 "worker_process_setup_hook": "memo_testing.batch_faults.install"})
    try:
        yield control
    finally:
        ray.shutdown()
        shutil.rmtree(session, ignore_errors=True)


GOOD = [  # (job line, the same job's single-job options)
    ({"image": "in/face.png", "audio": "in/short.wav", "output": "a.mp4"}, []),
    ({"image": "in/face.png", "audio": "in/long.wav", "output": "b.mp4", "seed": 7}, ["--seed", "7"]),
    ({"image": "in/face.png", "audio": "in/short.wav", "output": "c.mp4", "paste_back": True, "cfg": 2.0},
     ["--paste-back", "--cfg", "2.0"]),
    ({"image": "in/face.png", "audio": "in/short.wav", "output": "sub/d.mp4", "steps": 1,
      "framing": "resize", "emotion": "happy"}, ["--steps", "1", "--framing", "resize", "--emotion", "happy"]),
]


@pytest.fixture(scope="module")
def four_jobs(ray_cluster, tiny):
    jobs = write_jsonl(tiny / "good.jsonl", [row for row, _ in GOOD])
    out = tiny / "out_good"
    report = batch.run_batch(jobs, out, ["--models", str(tiny / "models"), *COMMON], workers=2,
                             max_checkpoint_share=None, progress=False)
    return jobs, out, report


@pytest.mark.slow
@pytest.mark.ray
def test_four_jobs_are_byte_identical_to_the_single_job_command(four_jobs, tiny, tmp_path):
    _, out, report = four_jobs
    assert report["summary"]["done"] == 4 and report["summary"]["failed"] == 0, report
    assert json.loads((out / "batch_report.json").read_text()) == report
    by_name = {j["output"]: j for j in report["jobs"]}
    assert {j["frames"] for j in report["jobs"]} == {15, 36}
    assert by_name["b.mp4"]["frames"] == 36 and by_name["b.mp4"]["clips"] == 3
    assert all(j["worker"]["device"] == "cpu" for j in report["jobs"])
    for row, options in GOOD:
        name = row["output"]
        expected = single_job(tiny, tmp_path / Path(name).name, Path(row["image"]).name,
                              Path(row["audio"]).name, *options)
        assert (out / name).read_bytes() == expected, name
        assert by_name[name]["status"] == "done" and by_name[name]["retries"] == 0
        assert not (out / (name + ".memo-resume")).exists()
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4", "batch_logs", "batch_report.json",
                                                      "c.mp4", "sub"]


@pytest.mark.slow
@pytest.mark.ray
def test_rerun_of_a_finished_batch_skips_everything(four_jobs, tiny):
    """The same command again (here through ``python -m memo_model batch``): nothing re-rendered."""
    jobs, out, _ = four_jobs
    before = {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.rglob("*.mp4")}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "memo_model", "batch", str(jobs), "--out", str(out),
                           "--models", str(tiny / "models"), *COMMON], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    seconds = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert "0 done, 4 skipped, 0 failed" in proc.stderr
    report = json.loads((out / "batch_report.json").read_text())
    assert [j["status"] for j in report["jobs"]] == ["skipped"] * 4
    assert {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in out.rglob("*.mp4")} == before
    print(f"re-run of a finished 4-job batch: {seconds:.1f} s")


@pytest.mark.slow
@pytest.mark.ray
def test_bad_jobs_are_reported_and_the_others_finish(four_jobs, tiny):
    """A missing file, a picture without a face and silent audio among good jobs (CSV jobs file),
    through ``python -m memo_model batch`` with its own local Ray and --free-frontends."""
    jobs = tiny / "mixed.csv"
    jobs.write_text("image,audio,output\n"
                    "in/face.png,in/short.wav,good1.mp4\n"
                    "in/missing.png,in/short.wav,missing.mp4\n"
                    "in/black.png,in/short.wav,noface.mp4\n"
                    "in/face.png,in/silent.wav,silent.mp4\n"
                    "in/face.png,in/long.wav,good2.mp4\n")
    out = tiny / "out_mixed"
    proc = subprocess.run([sys.executable, "-m", "memo_model", "batch", str(jobs), "--out", str(out),
                           "--workers", "2", "--free-frontends", "--models", str(tiny / "models"), *COMMON],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stderr                 # 1: some job failed
    assert "2 done, 0 skipped, 3 failed" in proc.stderr
    report = json.loads((out / "batch_report.json").read_text())
    by_name = {j["output"]: j for j in report["jobs"]}
    assert [by_name[n]["status"] for n in ("good1.mp4", "missing.mp4", "noface.mp4", "silent.mp4",
                                            "good2.mp4")] == ["done", "failed", "failed", "failed", "done"]
    missing = f"line 3: --image {tiny / 'in' / 'missing.png'}: file not found"
    assert by_name["missing.mp4"]["error"] == missing and f"memo batch: failed: {missing}" in proc.stderr
    assert by_name["noface.mp4"]["error"].startswith(f"line 4: --image {tiny / 'in' / 'black.png'}: no face found")
    assert by_name["silent.mp4"]["error"].startswith(f"line 5: --audio: audio file '{tiny / 'in' / 'silent.wav'}' "
                                                     "is silent")
    assert report["summary"]["failed"] == 3 and report["summary"]["done"] == 2
    assert sorted(p.name for p in out.glob("*.mp4")) == ["good1.mp4", "good2.mp4"]
    assert not list(out.glob(".*"))          # no partial files or features left behind
    assert (out / "batch_logs" / "noface.mp4.log").is_file()
    # the same job as four_jobs' a.mp4, front-end models loaded per job this time: same bytes
    assert (out / "good1.mp4").read_bytes() == (four_jobs[1] / "a.mp4").read_bytes()


@pytest.mark.slow
@pytest.mark.ray
def test_a_killed_worker_is_replaced_and_the_job_resumes(ray_cluster, tiny, tmp_path):
    """SIGKILL of the worker process right after the job's first checkpoint (memo_testing/batch_faults.py):
    Ray restarts the actor, the job is sent again, continues at clip 2, and the file is identical."""
    control = ray_cluster
    (control / faults.KILL_REQUEST).write_text("killed.mp4")
    jobs = write_jsonl(tiny / "kill.jsonl", [{"image": "in/face.png", "audio": "in/long.wav",
                                              "output": "killed.mp4", "seed": 3}])
    out = tiny / "out_kill"
    report = batch.run_batch(jobs, out, ["--models", str(tiny / "models"), *COMMON], retries=1,
                             max_checkpoint_share=None, progress=False)
    assert (control / faults.KILLED).is_file() and not (control / faults.KILL_REQUEST).exists()
    (job,) = report["jobs"]
    assert job["status"] == "done", job
    assert job["retries"] == 1 and job["resumed_clips"] == 1 and job["clips"] == 3
    died, resumed = job["attempts"]
    assert died["outcome"] == "worker died"
    assert resumed["outcome"] == "done" and resumed["checkpoint_at_start"] is True
    assert resumed["resumed_clips"] == 1
    assert died["worker"]["pid"] != resumed["worker"]["pid"]          # a restarted process
    expected = single_job(tiny, tmp_path / "killed.mp4", "face.png", "long.wav", "--seed", "3")
    assert (out / "killed.mp4").read_bytes() == expected
    assert not (out / "killed.mp4.memo-resume").exists()
    assert not list(out.glob(".*"))          # the dead attempt's partial mp4 and features are gone
