"""MEMO State Carry (node id MemoryStateCarry, the design card's name): pass a MEMO_STATE on, save
it to / load it from the output folder, so a long video renders over several queue runs.

Declarations only; the work is nodes/ops_state.py."""
from __future__ import annotations

from . import sockets
from .client_errors import for_clients
from .host.node_api import io
from .ops_state import MODES, carry_state, check_state_widgets, load_state, save_state, state_file_identity, state_path

CATEGORY = "MEMO"


class MemoStateCarry(io.ComfyNode):
    """Carry MEMO's memory between runs: pass through, save, load."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="MemoryStateCarry",
            display_name="MEMO State Carry (save / load / continue)",
            category=CATEGORY,
            description="Passes MEMO's state on and saves/loads it (safetensors in the output folder), so a long "
                        "video can be rendered in several queue runs or API calls and continue exactly where it "
                        "stopped.",
            inputs=[
                io.Combo.Input("mode", options=MODES, default="pass",
                               tooltip="pass: hand the state on. save: also write it to the file. load: read the file "
                                       "(error if missing). load or start: read the file, or start a new video when "
                                       "it does not exist yet (for rendering a long audio over several queue runs)."),
                io.String.Input("file_name", default="memo/state",
                                tooltip="State file inside ComfyUI's output folder (.safetensors is added). "
                                        "Sub-folders are fine; names that leave the output folder are refused."),
                sockets.MemoState.Input("state", optional=True,
                                        tooltip="State from MemoSampler (used by pass and save)."),
            ],
            outputs=[
                sockets.MemoState.Output(display_name="state", tooltip="The state (None when 'load or start' found no "
                                                                       "file: the sampler then starts anew)."),
                io.String.Output(display_name="info", tooltip="Where the video stands."),
                io.Int.Output(display_name="frames_done", tooltip="Frames of the current audio already rendered."),
            ],
            is_output_node=True,
        )

    @classmethod
    @for_clients
    def execute(cls, mode, file_name, state=None) -> io.NodeOutput:
        outputs, ui = carry_state(mode, file_name, state)
        return io.NodeOutput(*outputs, ui=ui)

    @classmethod
    def validate_inputs(cls, file_name=None):
        # file_name only, in every mode: ComfyUI lists a failed check under every input named here
        return check_state_widgets(file_name)

    @classmethod
    def fingerprint_inputs(cls, mode, file_name, state=None):
        return state_file_identity(mode, file_name)


__all__ = ["MemoStateCarry", "state_path", "save_state", "load_state"]
