"""Which models folder the command line reads (--models, $COMFYUI_MODELS, the ComfyUI the pack is
installed in, ./models) and the moves it prints for a folder in the old command-line layout."""
import subprocess
from pathlib import Path

from memo_model.apps import download as dl
from memo_model.apps.models_folder import ENV, find_models_folder, installed_comfyui_models, layout_problem
from memo_testing.model_layouts import old_layout, touch


def test_the_folder_is_chosen_by_option_then_variable_then_comfyui_then_default(tmp_path):
    comfy = tmp_path / "ComfyUI"
    pack = comfy / "custom_nodes" / "memo-pack"
    pack.mkdir(parents=True)
    (comfy / "models").mkdir()
    assert installed_comfyui_models(pack) == comfy / "models"
    assert installed_comfyui_models(tmp_path / "elsewhere" / "memo-pack") is None
    chosen = find_models_folder(tmp_path / "mine", environ={ENV: "/env/models"}, pack_dir=pack)
    assert (chosen.path, chosen.source) == (tmp_path / "mine", "--models")
    chosen = find_models_folder(None, environ={ENV: "/env/models"}, pack_dir=pack)
    assert (chosen.path, chosen.source) == (Path("/env/models"), "$COMFYUI_MODELS")
    chosen = find_models_folder(None, environ={}, pack_dir=pack)
    assert chosen.path == comfy / "models" and "ComfyUI this pack is installed in" in chosen.source
    chosen = find_models_folder(None, environ={ENV: " "}, pack_dir=tmp_path / "git" / "memo-pack")
    assert chosen.path == Path("models") and "default" in chosen.source


def test_the_new_layout_needs_no_advice(tmp_path):
    touch(tmp_path / "memo/memo/diffusion_net/config.json", b"{}")
    assert layout_problem(tmp_path) is None
    assert layout_problem(tmp_path / "empty") is None
    told = layout_problem(tmp_path / "memo")
    assert told == (f"--models {tmp_path / 'memo'}: this is ComfyUI's models/memo folder; give the models folder "
                    f"that holds it: --models {tmp_path}")


def run_moves(message: str) -> None:
    moves = [line.strip() for line in message.splitlines() if line.strip().startswith(("mkdir ", "mv "))]
    assert moves
    subprocess.run(["bash", "-euc", "\n".join(moves)], check=True)


def test_the_old_default_folder_gets_moves_that_give_the_new_layout(tmp_path):
    """./models/memo held everything; after the printed moves ./models is the new layout, VAE apart."""
    models = tmp_path / "models"
    old = old_layout(models / "memo")
    told = layout_problem(models, "models folder")
    assert told.startswith(f"models folder {models}: {old} holds the MEMO checkpoint in the command line's old "
                           "layout")
    assert f"{models / 'memo/memo'}/   reference_net/" in told
    assert f"then run with --models {models} --vae {old / 'vae'} (your diffusers VAE folder)" in told
    assert (f'hf download stabilityai/sd-vae-ft-mse-original vae-ft-mse-840000-ema-pruned.safetensors '
            f'--local-dir "{models / "vae"}"') in told
    assert told == layout_problem(old).replace(f"--models {old}", f"models folder {models}: {old}", 1)
    run_moves(told)
    needed = dl.RENDER_COMPONENTS + ("vocal_separator",)
    assert [m.component for m in dl.find_missing(models, needed)] == ["vae"]
    assert dl.find_missing(models, needed, {"vae": old / "vae"}) == []
    assert layout_problem(models) is None


def test_an_old_checkpoint_folder_of_another_name_moves_into_itself(tmp_path):
    old = old_layout(tmp_path / "weights", vae=False)
    told = layout_problem(old)
    assert "--vae" not in told and f"then run with --models {old}, after fetching the single-file VAE" in told
    run_moves(told)
    assert [m.component for m in dl.find_missing(old, dl.RENDER_COMPONENTS + ("vocal_separator",))] == ["vae"]


def test_the_nodes_and_the_command_line_read_the_same_files(tmp_path, monkeypatch):
    """Every loader's default dropdown value, in a models folder of the layout, names the files the
    command line reads from the same folder."""
    from memo_testing.pack import load_pack

    monkeypatch.setenv("MEMO_MODELS_DIR", str(tmp_path))
    locations = load_pack().nodes.model_locations
    for name in ("memo", "emotion_classifier", "face", "vocal_separator", "wav2vec", "emotion2vec"):
        folder = locations.locate(name, locations.default_choice(name))
        assert locations.component_files(name, folder) == [p for _rel, p in dl.local_files(name, tmp_path.resolve())]
