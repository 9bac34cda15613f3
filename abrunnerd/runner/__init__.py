"""The job's path, top to bottom: poll → claim → fetch → train → report → upload → clean up.

One job at a time. Every step is resumable from the durable state in ``work_dir``
(see ``state``): after a crash, ``kill -9`` or restart the held job is re-claimed with
its lease id and continues from the trainer's checkpoint. Training runs in a separate,
niced process (``training_process``) while this loop keeps pinging, so a saturated
machine never starves the heartbeat.

Error policy, in one place (``loop.Runner.loop_once``): network trouble and 5xx are
retried with capped, jittered backoff and logged once per change of state; 401/403 is
logged once as "token rejected by SERVER" and backed off long; a malformed job or
dataset is reported to the server as failed with the reason, and the runner carries on.

One module per concern (docs/runner.md, "Map of the code"):

- ``loop``: ``Runner``: lifecycle, reload, the error funnel and ``process_job``, the
  data path in one screen
- ``claim``: poll and claim; jobs passed over or refused
- ``lease``: re-claim after a restart; status pings
- ``fetch``: the features bundle; ``abonly``: AB-only servers (detection, /low-level,
  results kept in ``work_dir/results``)
- ``training``: the training process watched to its end; pause, resume, cancel, stop
- ``delivery``: upload, failure report, tidy up after cancel or a lost lease
- ``retry``: backoff and what the log says about trouble
- ``job``, ``parts``, ``signals``: the job, what every step shares, the stop flags
"""
from typing import List

from abrunnerd.runner.loop import EX_CONFIG, EX_NOPERM, Runner
from abrunnerd.runner.signals import Signals

__all__: List[str] = ["Runner", "Signals", "EX_CONFIG", "EX_NOPERM"]
