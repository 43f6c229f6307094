"""The error type for bad user input, and the signal that a training run was preempted."""


class InputError(ValueError):
    """Bad input from the user (a file, a value, a shape); its message is one line that names it."""


class Preempted(Exception):
    """A training run stopped on SIGTERM with its checkpoint at `step` saved (none at step 0);
    running it again resumes. The commands exit 0 on it; code that goes on to use the run must
    not."""

    def __init__(self, step: int, workdir: object):
        super().__init__(f"preempted: saved step {step} in {workdir}; rerun to resume" if step
                         else f"preempted before the first step: nothing saved in {workdir}; "
                         "rerun to start")
        self.step = step
