"""Who runs an embedded PostgreSQL: the current user, or a service user when that is root.

PostgreSQL refuses to run as root, so under root (containers, CI) the server runs as an
unprivileged system user, created once, that must be able to reach its data directory.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVICE_USER = "haetae-pg"


@dataclass(frozen=True)
class ServiceUser:
    name: str
    uid: int
    gid: int


def service_user() -> ServiceUser | None:
    """None when not root (the server runs as us); else the service user, created if missing."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("HAETAE_EMBEDDED_POSTGRES_USER", SERVICE_USER)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--shell",
             "/usr/sbin/nologin", name],
            check=True, capture_output=True,
        )  # fmt: skip
        entry = pwd.getpwnam(name)
    return ServiceUser(name, entry.pw_uid, entry.pw_gid)


def give_to(user: ServiceUser, path: Path) -> None:
    """Make ``path`` (a directory we created for the server) the user's, and let the user
    traverse its ancestors: search permission (o+x) only, never listing or reading."""
    os.chown(path, user.uid, user.gid)
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
