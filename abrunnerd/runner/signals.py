"""The stop and reload flags. Signal handlers (``daemon._install_signal_handlers``) only
set them; every step of the job path reads them at its next safe point."""

TICK = 0.2  # seconds between two looks at the flags while a job runs


class Signals:
    """Flags set by signal handlers (and nothing else); read at safe points."""

    def __init__(self) -> None:
        self.stop = False
        self.reload = False


class Stopping(Exception):
    """Raised inside a job step when the daemon is asked to stop; the job is kept."""
