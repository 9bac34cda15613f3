"""Server settings: every default in one table, validated once."""
from dataclasses import dataclass, fields

MAX_QUOTA_BYTES = 1 << 50  # the upper end of quota_bytes (settings.py, --quota-bytes)


@dataclass(frozen=True)
class ServerConfig:
    """Timing, limits and spot-check settings (CLI flags of ``abserver serve``)."""

    lease_seconds: int = 600  # a claim or ping keeps the job this long
    ping_interval: int = 60  # what the server asks runners to use between pings
    stall_seconds: int = 3600  # pings arriving but cells_done frozen this long => stalled
    max_result_bytes: int = 4 * 1024 * 1024  # the result JSON part
    max_model_bytes: int = 256 * 1024 * 1024  # the .history part
    spot_check_cells: int = 2  # cells recomputed per upload; 0 disables
    spot_check_max_recordings: int = 600  # larger snapshots are not spot-checked
    spot_check_tolerance: float = 0.1  # max |fold accuracy difference| of a cell (fraction, 0..1)
    quota_bytes: int = 2 * 1024 ** 3  # per owner: everything stored (abserver/quota.py); 0 = no quota

    def validate(self) -> None:
        problems = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value < 0:
                problems.append("%s must not be negative (got %r)" % (f.name, value))
        if self.lease_seconds < 1:
            problems.append("lease_seconds must be at least 1")
        if self.ping_interval < 1:
            problems.append("ping_interval must be at least 1")
        if self.ping_interval >= self.lease_seconds:
            problems.append(
                "ping_interval (%d) must be shorter than lease_seconds (%d), or every lease "
                "expires between two pings" % (self.ping_interval, self.lease_seconds)
            )
        if self.quota_bytes > MAX_QUOTA_BYTES:
            problems.append("quota_bytes must be at most %d (1 PiB); 0 means no quota" % MAX_QUOTA_BYTES)
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def max_upload_bytes(self) -> int:
        return self.max_result_bytes + self.max_model_bytes + 64 * 1024
