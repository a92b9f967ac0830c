"""Fault injection for tests/apps/test_batch.py, run in every Ray worker process of its cluster
(``worker_process_setup_hook``): kills the worker process right after the first resume
checkpoint of a chosen job, once, as a lost GPU machine or an out-of-memory kill would."""
import os
import signal
from pathlib import Path

KILL_REQUEST = "kill-after-first-checkpoint"     # file content: the output name to kill
KILLED = "killed"                                # renamed to this when the kill fires


def install() -> None:
    control = os.environ.get("MEMO_TEST_FAULTS")
    if not control:
        return
    from memo_model.output import resume

    original = resume.ResumeStore.commit

    def commit(self, clips_done, state):
        original(self, clips_done, state)
        request = Path(control) / KILL_REQUEST
        try:
            wanted = request.read_text().strip()
        except OSError:
            return
        if clips_done >= 1 and self.folder.name == wanted + resume.RESUME_SUFFIX:
            try:
                os.replace(request, Path(control) / KILLED)      # fires once, in one process
            except OSError:
                return
            os.kill(os.getpid(), signal.SIGKILL)

    resume.ResumeStore.commit = commit
