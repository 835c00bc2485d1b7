"""Running a part as an unprivileged user when we are root (PostgreSQL refuses to run as root).

The user is a system account created once; its processes start through
``setpriv``, which execs the real program, so the recorded pid is that program's.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path

from loopline_cli.stack.errors import PrerequisiteMissing, StackError

SERVICE_USER = "loopline"


def is_root() -> bool:
    return os.geteuid() == 0


def check_tools(part: str) -> None:
    for tool, package in (("setpriv", "util-linux"), ("useradd", "passwd")):
        if shutil.which(tool) is None:
            raise PrerequisiteMissing(part, f"binary `{tool}` (to drop root privileges)", f"apt-get install {package}")


def ensure_user(name: str = SERVICE_USER) -> pwd.struct_passwd:
    """The system user ``name``, created if missing (tolerates a concurrent creation)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    argv = [
        "useradd",
        "--system",
        "--user-group",
        "--no-create-home",
        "--home-dir",
        "/nonexistent",
        "--shell",
        "/usr/sbin/nologin",
        name,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise StackError(f"could not create system user {name!r}: {done.stderr.strip()}") from None


def run_as(user: pwd.struct_passwd) -> list[str]:
    """Command prefix that runs what follows as ``user``."""
    return ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups", "--"]


def hand_over(directory: Path, user: pwd.struct_passwd) -> None:
    """Give ``directory`` to ``user`` and let it reach the directory through its ancestors.

    Ancestors that the user cannot search get the search bit for others (o+x), not
    read: e.g. pytest's 0700 temporary root. Nothing else about them changes.
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.chown(directory, user.pw_uid, user.pw_gid)
    for ancestor in directory.parents:
        mode = ancestor.stat()
        if mode.st_uid != user.pw_uid and not mode.st_mode & stat.S_IXOTH:
            os.chmod(ancestor, stat.S_IMODE(mode.st_mode) | stat.S_IXOTH)
